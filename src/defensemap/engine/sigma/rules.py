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

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.exceptions import SigmaError, SigmaRuleLocation, SigmaTransformationError
from sigma.filters import SigmaFilter
from sigma.rule import SigmaDetection, SigmaRule
from sigma.types import Placeholder, SigmaRegularExpression, SigmaString

from defensemap.engine.sigma.backend import DuckDBBackend, Schema, quote_identifier
from defensemap.engine.sigma.pipelines import (
    XDR_NO_TABLE,
    PipelineVariant,
    defender_field,
    generic_applies,
    table_kind,
    variants_for,
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
_TECHNIQUE_TAG = re.compile(r"t\d{4}(\.\d{3})?\Z")
_TECHNIQUE_ARG = re.compile(r"T\d{4}(\.\d{3})?\Z", re.IGNORECASE)
_OTHER_ATTACK_TAG = re.compile(r"([gs]\d{4}|ta\d{4}|detection\..*)\Z")
# Where correlation windows find event time, in order of preference.
TIMESTAMP_COLUMNS = (
    "Timestamp",
    "TimeGenerated",
    "TimeCreated",
    "SystemTime",
    "UtcTime",
    "EventTime",
    "@timestamp",
    "timestamp",
)


@dataclass(frozen=True)
class RuleProblem:
    """A rule that could not be loaded, converted or evaluated, and why."""

    rule_id: str
    title: str
    path: str | None
    reason: str

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"{self.title} [{self.rule_id}]{where}: {self.reason}"


@dataclass(frozen=True)
class RuleWarning:
    """A converted rule that uses fields the table lacks (those conditions are false)."""

    rule_id: str
    title: str
    table: str
    fields: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.title} [{self.rule_id}] on {self.table}: no column {', '.join(self.fields)}"


@dataclass(frozen=True)
class RuleInfo:
    """What a match or a problem reports about its rule."""

    rule_id: str
    title: str
    level: str | None
    status: str | None
    tags: tuple[str, ...]
    techniques: tuple[str, ...]
    tactics: tuple[str, ...]
    path: str | None
    category: str | None
    product: str | None
    service: str | None

    @classmethod
    def of(cls, rule: SigmaRule | SigmaCorrelationRule) -> RuleInfo:
        tags = tuple(str(t) for t in rule.tags)
        attack = [t.name.lower() for t in rule.tags if t.namespace.lower() == "attack"]
        techniques = tuple(sorted({t.upper() for t in attack if _TECHNIQUE_TAG.match(t)}))
        tactics = tuple(
            sorted(
                {
                    _tactic_name(t)
                    for t in attack
                    if not _TECHNIQUE_TAG.match(t) and not _OTHER_ATTACK_TAG.match(t)
                }
            )
        )
        logsource = rule.logsource if isinstance(rule, SigmaRule) else None
        return cls(
            rule_id=rule_key(rule),
            title=rule.title or rule_key(rule),
            level=rule.level.name.lower() if rule.level else None,
            status=rule.status.name.lower() if rule.status else None,
            tags=tags,
            techniques=techniques,
            tactics=tactics,
            path=_rule_path(rule),
            category=logsource.category if logsource else None,
            product=logsource.product if logsource else None,
            service=logsource.service if logsource else None,
        )

    def problem(self, reason: str) -> RuleProblem:
        return RuleProblem(self.rule_id, self.title, self.path, reason)


def _tactic_name(tag: str) -> str:
    return tag.casefold().replace("_", "-").replace(" ", "-")


def rule_key(rule: SigmaRule | SigmaCorrelationRule) -> str:
    """A rule's id (its UUID, else its name, else its title)."""
    if rule.id is not None:
        return str(rule.id)
    return rule.name or rule.title or "<untitled>"


def _rule_path(rule: SigmaRule | SigmaCorrelationRule) -> str | None:
    source = rule.source
    return str(source.path) if source is not None and source.path is not None else None


@dataclass
class RuleSet:
    """Loaded (and possibly selected) rules.

    ``support`` holds detection rules only needed because a selected correlation references
    them (and says ``generate: false``): they are evaluated but their own matches not reported.
    """

    rules: list[SigmaRule] = field(default_factory=list)
    correlations: list[SigmaCorrelationRule] = field(default_factory=list)
    problems: list[RuleProblem] = field(default_factory=list)
    support: list[SigmaRule] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rules) + len(self.correlations)


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


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return re.sub(r"\s+", " ", text)


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


# -- conversion ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledRule:
    """One rule as a SQL condition over one table's columns."""

    info: RuleInfo
    table: str
    condition: str
    unknown_fields: tuple[str, ...] = ()
    report: bool = True  # False: only evaluated for a correlation (generate: false)

    def sql(self) -> str:
        return f"SELECT * FROM {quote_identifier(self.table)} WHERE {self.condition}"


@dataclass(frozen=True)
class CompiledCorrelation:
    """A correlation rule as a query returning the events at which its condition holds.

    Columns of ``sql``: ``dm_g0``... (group-by values, named by ``group_by``), ``dm_rule``
    (index into ``members``), ``dm_ts``, ``dm_first`` (window start), ``dm_value`` (the
    aggregate). For ``temporal_ordered`` the query returns all member events in group and time
    order and the ordering is checked in Python.
    """

    info: RuleInfo
    type: str
    tables: tuple[str, ...]
    members: tuple[str, ...]  # referenced rule ids, in the rule's order
    group_by: tuple[str, ...]
    timespan_seconds: int
    sql: str


@dataclass
class Compilation:
    """Conversion of a rule set against the tables to be searched."""

    rules: dict[str, list[CompiledRule]] = field(default_factory=dict)  # by table
    correlations: list[CompiledCorrelation] = field(default_factory=list)
    problems: list[RuleProblem] = field(default_factory=list)
    warnings: list[RuleWarning] = field(default_factory=list)
    not_applicable: list[RuleInfo] = field(default_factory=list)
    outcome: dict[str, Literal["converted", "failed", "not_applicable"]] = field(
        default_factory=dict
    )
    infos: dict[str, RuleInfo] = field(default_factory=dict)

    def converted(self) -> int:
        return sum(1 for v in self.outcome.values() if v == "converted")


class _Target:
    """A backend for one pipeline variant and the tables it serves."""

    def __init__(
        self, variant: PipelineVariant, table: str | None, schemas: Mapping[str, Schema]
    ) -> None:
        self.variant = variant
        self.table = table
        self.schemas = schemas
        self.backend = DuckDBBackend(variant.build(), table=table, schemas=schemas)
        self.backend.init_processing_pipeline("where")

    def convert(self, rule: SigmaRule) -> tuple[str, str | None, set[str]] | None:
        """(condition, table, unknown fields), or None when the variant does not apply."""
        work = copy.deepcopy(rule, {id(b): b for b in rule._backreferences})
        work._backreferences = []
        work._output = True
        queries = self.backend.convert_rule(work, "where")
        applied = set(self.backend.last_processing_pipeline.applied_ids)
        if not queries or not self.variant.selected(applied):
            return None
        condition = queries[0] if len(queries) == 1 else " OR ".join(f"({q})" for q in queries)
        return str(condition), self.backend.target_table, set(self.backend.unknown_fields)


def _placeholders(rule: SigmaRule) -> list[str]:
    """Names of the unresolved ``|expand`` placeholders in a rule's values."""
    names: set[str] = set()

    def walk(detection: SigmaDetection) -> None:
        for item in detection.detection_items:
            if isinstance(item, SigmaDetection):
                walk(item)
                continue
            for value in item.value:
                text = value.regexp if isinstance(value, SigmaRegularExpression) else value
                if isinstance(text, SigmaString):
                    names.update(f"%{p.name}%" for p in text.s if isinstance(p, Placeholder))

    for detection in rule.detection.detections.values():
        walk(detection)
    return sorted(names)


def _resolve_table(name: str | None, tables: Iterable[str]) -> str | None:
    if name is None:
        return None
    for table in tables:
        if table.casefold() == name.casefold():
            return table
    return None


def compile_rules(rules: RuleSet, schemas: Mapping[str, Schema]) -> Compilation:
    """Convert every rule for every table it applies to (see :mod:`.pipelines`).

    ``schemas`` maps the tables to search to their columns (name -> DuckDB type)."""
    tables = {name: dict(cols) for name, cols in schemas.items()}
    kinds = {name: table_kind(name) for name in tables}
    targets: list[tuple[str, list[_Target]]] = []  # (kind, variants)
    for name, kind in kinds.items():
        if kind == "windows":
            variants = [_Target(v, name, {name: tables[name]}) for v in variants_for(kind)]
            targets.append((kind, variants))
        elif kind == "generic":
            targets.append((kind, [_Target(variants_for(kind)[0], name, {name: tables[name]})]))
    defender = {n: tables[n] for n, k in kinds.items() if k == "defender"}
    if defender:
        targets.append(("defender", [_Target(v, None, defender) for v in variants_for("defender")]))

    result = Compilation()
    support = {id(r) for r in rules.support}
    for rule in [*rules.rules, *rules.support]:
        # pySigma clears _output on rules a correlation references with generate: false
        report = id(rule) not in support and bool(getattr(rule, "_output", True))
        _compile_one(rule, report, targets, tables, result)
    for corr in rules.correlations:
        info = RuleInfo.of(corr)
        result.infos[info.rule_id] = info
        try:
            compiled = _compile_correlation(corr, info, result, tables)
        except _Unsupported as exc:
            result.problems.append(info.problem(str(exc)))
            result.outcome[info.rule_id] = "failed"
            continue
        result.correlations.append(compiled)
        result.outcome[info.rule_id] = "converted"
    return result


def _compile_one(
    rule: SigmaRule,
    report: bool,
    targets: list[tuple[str, list[_Target]]],
    tables: dict[str, dict[str, str]],
    result: Compilation,
) -> None:
    info = RuleInfo.of(rule)
    result.infos[info.rule_id] = info
    placeholders = _placeholders(rule)
    if placeholders:
        result.problems.append(
            info.problem(
                f"unresolved placeholder {', '.join(placeholders)}: defensemap does not expand "
                "|expand placeholders; replace them with values in a copy of the rule"
            )
        )
        result.outcome[info.rule_id] = "failed"
        return
    errors: list[str] = []
    converted = False
    for kind, variants in targets:
        if kind == "generic":
            table = variants[0].table
            if table is None or not generic_applies(rule, tables[table]):
                continue
        per_table = _convert_for(rule, variants, tables, errors)
        for table, parts in per_table.items():
            condition = parts[0][0] if len(parts) == 1 else " OR ".join(f"({c})" for c, _ in parts)
            unknown = tuple(sorted(set.intersection(*(u for _, u in parts))))
            result.rules.setdefault(table, []).append(
                CompiledRule(info, table, condition, unknown, report)
            )
            converted = True
            if unknown:
                result.warnings.append(RuleWarning(info.rule_id, info.title, table, unknown))
    if errors:
        result.problems.append(info.problem("; ".join(dict.fromkeys(errors))))
    if converted:
        result.outcome[info.rule_id] = "converted"
    elif errors:
        result.outcome[info.rule_id] = "failed"
    else:
        result.not_applicable.append(info)
        result.outcome[info.rule_id] = "not_applicable"


def _convert_for(
    rule: SigmaRule,
    variants: list[_Target],
    tables: Mapping[str, Mapping[str, str]],
    errors: list[str],
) -> dict[str, list[tuple[str, set[str]]]]:
    """Convert a rule with each pipeline variant of one kind of table.

    Returns (condition, unknown fields) per ingested table. A failure of the first (primary)
    variant is an error (appended to ``errors``) and discards the kind; a later variant that
    fails (e.g. a field Windows auditing does not record) is simply not used."""
    per_table: dict[str, list[tuple[str, set[str]]]] = {}
    for position, target in enumerate(variants):
        if not target.variant.wants(rule):
            continue
        try:
            outcome = target.convert(rule)
        except Exception as exc:  # pySigma raises many types; every one is a reason
            if isinstance(exc, SigmaTransformationError) and XDR_NO_TABLE in str(exc):
                continue  # the XDR pipeline has no table for this logsource
            if position == 0:
                errors.append(f"{target.table or target.variant.name}: {_reason(exc)}")
                return {}
            continue
        if outcome is None:
            continue
        condition, table_name, unknown = outcome
        table = _resolve_table(table_name, tables)
        if table is not None:  # else routed to a table that was not ingested
            per_table.setdefault(table, []).append((condition, unknown))
    return per_table


# -- correlations -------------------------------------------------------------------------------


class _Unsupported(Exception):
    pass


_CORRELATION_OPS = {
    SigmaCorrelationConditionOperator.LT: "<",
    SigmaCorrelationConditionOperator.LTE: "<=",
    SigmaCorrelationConditionOperator.GT: ">",
    SigmaCorrelationConditionOperator.GTE: ">=",
    SigmaCorrelationConditionOperator.EQ: "=",
    SigmaCorrelationConditionOperator.NEQ: "<>",
}


def _column_sql(table: str, schema: Mapping[str, str], field_name: str | None) -> str:
    """A column as VARCHAR (NULL when the table lacks it), Defender names mapped."""
    if field_name is None:
        return "CAST(NULL AS VARCHAR)"
    candidates = [field_name]
    if table_kind(table) == "defender":
        candidates.insert(0, defender_field(table, field_name))
    folded = {c.casefold(): c for c in schema}
    for candidate in candidates:
        actual = folded.get(candidate.casefold())
        if actual is not None:
            return f"CAST({quote_identifier(actual)} AS VARCHAR)"
    return "CAST(NULL AS VARCHAR)"


def _timestamp_column(schema: Mapping[str, str]) -> str | None:
    folded = {c.casefold(): c for c in schema}
    for name in TIMESTAMP_COLUMNS:
        if name.casefold() in folded:
            return folded[name.casefold()]
    return None


def _compile_correlation(
    corr: SigmaCorrelationRule,
    info: RuleInfo,
    result: Compilation,
    tables: dict[str, dict[str, str]],
) -> CompiledCorrelation:
    condition = corr.condition
    if not isinstance(condition, SigmaCorrelationCondition):
        raise _Unsupported("extended (boolean) correlation conditions are not supported")
    kind = corr.type
    by_rule: dict[str, list[CompiledRule]] = {}
    for compiled_list in result.rules.values():
        for compiled in compiled_list:
            by_rule.setdefault(compiled.info.rule_id, []).append(compiled)

    value_field: str | None = None
    if kind not in (
        SigmaCorrelationType.EVENT_COUNT,
        SigmaCorrelationType.TEMPORAL,
        SigmaCorrelationType.TEMPORAL_ORDERED,
    ):
        fieldref = condition.fieldref
        if isinstance(fieldref, list):
            if len(fieldref) != 1:
                raise _Unsupported("correlation conditions on several fields are not supported")
            fieldref = fieldref[0]
        value_field = fieldref
    group_by = tuple(corr.group_by or ())
    members: list[str] = []
    selects: list[str] = []
    used_tables: list[str] = []
    for index, ref in enumerate(corr.referenced_rules):
        base = ref.rule
        if not isinstance(base, SigmaRule):
            raise _Unsupported("correlations of correlation rules are not supported")
        base_id = rule_key(base)
        members.append(base_id)
        compiled_list = by_rule.get(base_id, [])
        if not compiled_list:
            failed = result.outcome.get(base_id) == "failed"
            why = "could not be converted" if failed else "applies to no ingested table"
            raise _Unsupported(f"referenced rule {ref.reference} {why}")
        for compiled in compiled_list:
            schema = tables[compiled.table]
            ts = _timestamp_column(schema)
            if ts is None:
                raise _Unsupported(
                    f"table {compiled.table} has no timestamp column "
                    f"(looked for {', '.join(TIMESTAMP_COLUMNS)})"
                )
            groups = [
                f"{_column_sql(compiled.table, schema, _alias_field(corr, ref, g))} AS dm_g{i}"
                for i, g in enumerate(group_by)
            ]
            value = _column_sql(compiled.table, schema, _alias_field(corr, ref, value_field))
            columns = ", ".join(
                [
                    f"{index} AS dm_rule",
                    f"TRY_CAST({quote_identifier(ts)} AS TIMESTAMP) AS dm_ts",
                    *groups,
                    f"{value} AS dm_field",
                ]
            )
            source = quote_identifier(compiled.table)
            selects.append(f"SELECT {columns} FROM {source} WHERE {compiled.condition}")
            used_tables.append(compiled.table)
    events = " UNION ALL ".join(f"({s})" for s in selects)
    group_cols = [f"dm_g{i}" for i in range(len(group_by))]
    order = ", ".join([*group_cols, "dm_ts", "dm_rule"])
    span = corr.timespan.seconds
    if kind == SigmaCorrelationType.TEMPORAL_ORDERED:
        sql = (
            f"SELECT {', '.join([*group_cols, 'dm_rule', 'dm_ts'])} FROM ({events}) "
            f"WHERE dm_ts IS NOT NULL ORDER BY {order}"
        )
    else:
        aggregate = _aggregate(kind, condition)
        partition = f"PARTITION BY {', '.join(group_cols)} " if group_cols else ""
        op = _CORRELATION_OPS[condition.op]
        select_cols = ", ".join([*group_cols, "dm_rule", "dm_ts", "dm_first", "dm_value"])
        sql = (
            f"SELECT {select_cols} FROM (SELECT *, {aggregate} OVER dm_w AS dm_value, "
            f"min(dm_ts) OVER dm_w AS dm_first FROM ({events}) WHERE dm_ts IS NOT NULL "
            f"WINDOW dm_w AS ({partition}ORDER BY dm_ts RANGE BETWEEN "
            f"INTERVAL {span} SECOND PRECEDING AND CURRENT ROW)) "
            f"WHERE dm_value {op} {condition.count} ORDER BY {order}"
        )
    return CompiledCorrelation(
        info=info,
        type=kind.name.lower(),
        tables=tuple(dict.fromkeys(used_tables)),
        members=tuple(members),
        group_by=group_by,
        timespan_seconds=span,
        sql=sql,
    )


def _alias_field(corr: SigmaCorrelationRule, ref: Any, name: str | None) -> str | None:
    if name is None:
        return None
    alias = corr.aliases.aliases.get(name) if corr.aliases else None
    if alias is None:
        return name
    for alias_ref, field_name in alias.mapping.items():
        if alias_ref.reference == ref.reference:
            return field_name
    return name


def _aggregate(kind: SigmaCorrelationType, condition: SigmaCorrelationCondition) -> str:
    number = "TRY_CAST(dm_field AS DOUBLE)"
    if kind == SigmaCorrelationType.EVENT_COUNT:
        return "count(*)"
    if kind == SigmaCorrelationType.VALUE_COUNT:
        return "count(DISTINCT dm_field)"
    if kind == SigmaCorrelationType.TEMPORAL:
        return "count(DISTINCT dm_rule)"
    if kind == SigmaCorrelationType.VALUE_SUM:
        return f"sum({number})"
    if kind == SigmaCorrelationType.VALUE_AVG:
        return f"avg({number})"
    if kind == SigmaCorrelationType.VALUE_MEDIAN:
        return f"median({number})"
    if kind == SigmaCorrelationType.VALUE_PERCENTILE:
        percentile = condition.percentile if condition.percentile is not None else 50
        return f"quantile_cont({number}, {percentile / 100!r})"
    raise _Unsupported(f"correlation type {kind.name.lower()} is not supported")
