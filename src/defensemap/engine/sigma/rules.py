"""Sigma rule sets: load, select (technique, tactic, level, status), convert per table.

Every rule that cannot be used is kept as a :class:`RuleProblem` naming the rule, its file and
the reason (one per rule, however many tables it failed for) so the CLI can list them loudly
once; nothing is dropped silently. Rules whose logsource maps to none of the ingested tables are
"not applicable": counted, not an error.

Placeholders (``|expand`` values such as ``%known_cdcs%``) are refused explicitly: defensemap has
no placeholder values to expand them with.

Correlation rules (``event_count``, ``value_count``, ``value_sum``, ``value_avg``,
``value_median``, ``value_percentile``, ``temporal``, ``temporal_ordered``) are evaluated over
the matches of the rules they reference: a window query per correlation (``PARTITION BY`` the
group-by fields, ``RANGE`` over the timespan on the table's timestamp column) finds the events
at which the condition holds; ``temporal_ordered`` orders the events in Python. Extended
(boolean) correlation conditions and correlations of correlations are listed as unsupported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule

from defensemap.engine.sigma.conversion import (
    Compilation,
    CompiledCorrelation,
    CompiledRule,
    compile_rules,
)
from defensemap.engine.sigma.ruleinfo import (
    RuleInfo,
    RuleProblem,
    RuleSet,
    RuleWarning,
    _reason,
    _tactic_name,
    rule_key,
)
from defensemap.errors import InputError

__all__ = [
    "LEVELS",
    "STATUSES",
    "TACTICS",
    "Compilation",
    "CompiledCorrelation",
    "CompiledRule",
    "RuleInfo",
    "RuleProblem",
    "RuleSet",
    "RuleWarning",
    "compile_rules",
    "load_rules",
    "rules_from_yaml",
    "select_rules",
]

LEVELS = ("informational", "low", "medium", "high", "critical")
STATUSES = ("stable", "test", "experimental", "deprecated", "unsupported")
# ATT&CK Enterprise tactics: Sigma tag name (attack.<name>) by TA id.
TACTICS: dict[str, str] = {
    "TA0043": "reconnaissance",
    "TA0042": "resource-development",
    "TA0001": "initial-access",
    "TA0002": "execution",
    "TA0003": "persistence",
    "TA0004": "privilege-escalation",
    "TA0005": "defense-evasion",
    "TA0006": "credential-access",
    "TA0007": "discovery",
    "TA0008": "lateral-movement",
    "TA0009": "collection",
    "TA0011": "command-and-control",
    "TA0010": "exfiltration",
    "TA0040": "impact",
}
_TECHNIQUE_ARG = re.compile(r"T\d{4}(\.\d{3})?\Z", re.IGNORECASE)


# -- loading ------------------------------------------------------------------------------------


def _rule_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml")))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"no Sigma rule file or folder at {path}")
    return files


def load_rules(paths: Iterable[Path | str]) -> RuleSet:
    """Load Sigma rules from files and folders (``*.yml``/``*.yaml``, recursively).

    A file that is not YAML, or a rule pySigma rejects, becomes a :class:`RuleProblem`; every
    other rule in the set still loads. Correlation references are resolved across all files.
    """
    result = RuleSet()
    loaded: list[SigmaRule | SigmaCorrelationRule] = []
    for path in _rule_files(Path(p) for p in paths):
        try:
            text = path.read_text(encoding="utf-8")
            collection = SigmaCollection.from_yaml(
                text,
                collect_errors=True,
                source=SigmaRuleLocation(path),
                collect_filters=True,
                resolve_references=False,
            )
        except (OSError, UnicodeDecodeError, yaml.YAMLError, SigmaError) as exc:
            reason = f"cannot load: {_reason(exc)}"
            result.problems.append(RuleProblem(path.stem, path.name, str(path), reason))
            continue
        _add_collection(result, loaded, collection, path)
    return _with_references(result, loaded)


def rules_from_yaml(texts: Iterable[tuple[str, str]]) -> RuleSet:
    """Sigma rules from ``(where, YAML text)`` pairs — rules kept as text, such as the community
    rules in the store — loaded exactly like files (``where`` names the rule's file)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    result = RuleSet()
    loaded: list[SigmaRule | SigmaCorrelationRule] = []
    for where, text in texts:
        path = Path(where)
        try:
            collection = SigmaCollection.from_dicts(
                list(yaml.load_all(text, Loader=loader)),
                collect_errors=True,
                source=SigmaRuleLocation(path),
                collect_filters=True,
                resolve_references=False,
            )
        except (yaml.YAMLError, SigmaError) as exc:
            reason = f"cannot load: {_reason(exc)}"
            result.problems.append(RuleProblem(path.stem, path.name, where, reason))
            continue
        _add_collection(result, loaded, collection, path)
    return _with_references(result, loaded)


def _add_collection(
    result: RuleSet,
    loaded: list[SigmaRule | SigmaCorrelationRule],
    collection: SigmaCollection,
    path: Path,
) -> None:
    """The usable rules of one file go to ``loaded``, everything else to the problems."""
    for rule in collection.rules:
        if not isinstance(rule, SigmaRule | SigmaCorrelationRule):
            result.problems.append(
                RuleProblem(
                    rule_key(rule),
                    rule.title or path.name,
                    str(path),
                    "Sigma filter rules (meta filters) are not supported",
                )
            )
            continue
        if rule.errors:
            reason = "cannot load: " + "; ".join(_reason(e) for e in rule.errors)
            result.problems.append(RuleInfo.of(rule).problem(reason))
            continue
        loaded.append(rule)
    for error in collection.errors:
        if not any(error in r.errors for r in collection.rules):
            reason = f"cannot load: {_reason(error)}"
            result.problems.append(RuleProblem(path.stem, path.name, str(path), reason))


def _with_references(result: RuleSet, loaded: list[SigmaRule | SigmaCorrelationRule]) -> RuleSet:
    """Resolve correlation references across every loaded rule, then sort rules into the set."""
    everything: list[SigmaRule | SigmaCorrelationRule | SigmaFilter] = list(loaded)
    collection = SigmaCollection(everything, resolve_references=False)
    for rule in loaded:
        if isinstance(rule, SigmaCorrelationRule):
            try:
                rule.resolve_rule_references(collection)
            except SigmaError as exc:
                result.problems.append(RuleInfo.of(rule).problem(f"cannot load: {_reason(exc)}"))
                continue
            result.correlations.append(rule)
        else:
            result.rules.append(rule)
    return result


# -- selection ----------------------------------------------------------------------------------


def select_rules(
    rules: RuleSet,
    *,
    techniques: Sequence[str] = (),
    tactics: Sequence[str] = (),
    levels: Sequence[str] = (),
    statuses: Sequence[str] = (),
) -> RuleSet:
    """The rules matching every given criterion (values of one criterion are alternatives).

    * technique ``T1059`` selects rules tagged ``attack.t1059`` and its sub-techniques
      (``attack.t1059.001``); ``T1059.001`` only that sub-technique;
    * tactic by name (``defense-evasion``, ``Defense Evasion``, ``defense_evasion``) or id
      (``TA0005``);
    * level by name, or ``high+`` for that level and above;
    * status by name.

    Detection rules a selected correlation needs are kept in ``support`` (evaluated, matches
    not reported). As in Sigma, a rule that a correlation references with ``generate: false``
    never reports matches of its own, selected or not.
    """
    technique_set = {_technique_arg(t) for t in techniques}
    tactic_set = {_tactic_arg(t) for t in tactics}
    level_set = {lv for arg in levels for lv in _level_arg(arg)}
    status_set = {_status_arg(s) for s in statuses}

    def wanted(info: RuleInfo) -> bool:
        if technique_set and not any(
            t in technique_set or t.split(".")[0] in technique_set for t in info.techniques
        ):
            return False
        if tactic_set and not tactic_set.intersection(info.tactics):
            return False
        if level_set and info.level not in level_set:
            return False
        return not (status_set and info.status not in status_set)

    selected = RuleSet(problems=list(rules.problems))
    selected.correlations = [c for c in rules.correlations if wanted(RuleInfo.of(c))]
    needed: dict[int, bool] = {}  # id(rule) -> must its matches stay hidden?
    for corr in selected.correlations:
        for ref in corr.referenced_rules:
            if isinstance(ref.rule, SigmaRule):
                needed[id(ref.rule)] = needed.get(id(ref.rule), True) and not corr.generate
    candidates = {id(r) for r in rules.rules}
    for rule in [*rules.rules, *rules.support]:
        hidden = needed.get(id(rule))  # None: not needed; True: needed with generate: false
        if id(rule) in candidates and hidden is not True and wanted(RuleInfo.of(rule)):
            selected.rules.append(rule)
        elif hidden is not None:
            selected.support.append(rule)
    return selected


def _technique_arg(value: str) -> str:
    text = value.strip()
    if not _TECHNIQUE_ARG.match(text):
        raise InputError(
            f"{value!r} is not an ATT&CK technique id", hint="use e.g. T1059 or T1059.001"
        )
    return text.upper()


def _tactic_arg(value: str) -> str:
    text = value.strip()
    if text.upper() in TACTICS:
        return TACTICS[text.upper()]
    name = _tactic_name(text)
    if not re.fullmatch(r"[a-z][a-z-]*", name):
        raise InputError(f"{value!r} is not an ATT&CK tactic", hint="use e.g. execution or TA0002")
    return name


def _level_arg(value: str) -> list[str]:
    text = value.strip().lower()
    at_least = text.endswith("+")
    name = text.rstrip("+")
    if name not in LEVELS:
        raise InputError(f"unknown Sigma level {value!r}", hint=f"use one of {', '.join(LEVELS)}")
    return list(LEVELS[LEVELS.index(name) :]) if at_least else [name]


def _status_arg(value: str) -> str:
    text = value.strip().lower()
    if text not in STATUSES:
        raise InputError(
            f"unknown Sigma status {value!r}", hint=f"use one of {', '.join(STATUSES)}"
        )
    return text
