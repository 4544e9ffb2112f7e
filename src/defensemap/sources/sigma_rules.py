"""Read SigmaHQ rule files (the SigmaHQ/sigma repository layout) into :class:`CommunityRule`s.

Community rules are someone else's work under the Detection Rule License 1.1: each one keeps
its author, its YAML exactly as written and a link to its file upstream, so whatever shows or
converts it can attribute it. A file that is not a usable rule is returned as a
:class:`SkippedRule` naming the file (and line) and why — never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from defensemap.errors import ParseError, SchemaError, SourceError, SourceLocation
from defensemap.model.sigma_rules import CommunityRule, SigmaScan, SkippedRule
from defensemap.sources.yamlfiles import load_yaml_documents

UPSTREAM_BLOB = "https://github.com/SigmaHQ/sigma/blob/master/"
# Top-level folders of the SigmaHQ repository that hold rules; a file's path from the
# repository root (its link upstream) starts at the nearest of them.
_TOP_FOLDER = re.compile(r"rules(-[a-z0-9-]+)?|deprecated|unsupported")
_TECHNIQUE_TAG = re.compile(r"t\d{4}(\.\d{3})?")
_OTHER_ATTACK_TAG = re.compile(r"[gs]\d{4}|ta\d{4}|detection\..*")


def collect_rule_files(paths: Iterable[Path]) -> list[Path]:
    """``*.yml``/``*.yaml`` files, folders searched recursively, in path order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml"))
        elif path.is_file():
            files.append(path)
        else:
            raise SourceError(
                "no such file or folder",
                location=SourceLocation(path=str(path)),
                hint="pass SigmaHQ rule files or folders, e.g. a clone of SigmaHQ/sigma",
            )
    return files


def scan_rules(
    paths: Iterable[Path], on_progress: Callable[[int, int], None] | None = None
) -> SigmaScan:
    """Read every rule file under ``paths``; unusable files and repeated ids are skipped and
    listed, the first file with an id wins. ``on_progress(done, total)`` follows the files."""
    roots = list(paths)
    files = collect_rule_files(roots)
    rules: list[CommunityRule] = []
    skipped: list[SkippedRule] = []
    seen: dict[str, str] = {}
    for done, path in enumerate(files):
        if on_progress is not None:
            on_progress(done, len(files))
        try:
            rule = read_rule_file(path)
        except SourceError as error:
            skipped.append(SkippedRule(str(error.location or path), error.message))
            continue
        key = rule.id.lower()
        if key in seen:
            skipped.append(SkippedRule(str(path), f"id {rule.id} is also used by {seen[key]}"))
            continue
        seen[key] = str(path)
        rules.append(rule)
    return SigmaScan([str(p) for p in roots], len(files), rules, skipped)


def read_rule_file(path: Path) -> CommunityRule:
    """One rule file: parsed by pySigma (the same parser that converts and runs it)."""
    text = _read_text(path)
    document = _one_document(text, path)
    rule = _parse_sigma(document, path)
    relpath = repository_path(path)
    return _community_rule(rule, text, relpath)


def repository_path(path: Path) -> str:
    """The file's path inside the SigmaHQ repository (from its ``rules*`` folder on)."""
    parts = path.resolve().parts
    for index in range(len(parts) - 2, -1, -1):
        if _TOP_FOLDER.fullmatch(parts[index]):
            return "/".join(parts[index:])
    raise SchemaError(
        "not inside a SigmaHQ rules folder (rules/, rules-threat-hunting/,"
        " rules-emerging-threats/, deprecated/ …), so its source cannot be attributed",
        location=SourceLocation(path=str(path)),
        hint="import rules from a SigmaHQ/sigma checkout",
    )


def _read_text(path: Path) -> str:
    where = SourceLocation(path=str(path))
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror}", location=where) from None
    except UnicodeDecodeError:
        raise ParseError("not UTF-8 text", location=where) from None


def _one_document(text: str, path: Path) -> dict[str, Any]:
    documents = load_yaml_documents(text, path)
    where = SourceLocation(path=str(path))
    if len(documents) != 1:
        raise SchemaError(
            f"holds {len(documents)} YAML documents; a SigmaHQ rule file holds exactly one",
            location=where,
        )
    document = documents[0]
    if not isinstance(document, dict) or not ("detection" in document or "correlation" in document):
        raise SchemaError(
            "not a Sigma rule: no `detection` or `correlation` section", location=where
        )
    return document


def _parse_sigma(document: dict[str, Any], path: Path) -> Any:
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError, SigmaRuleLocation

    where = SourceLocation(path=str(path))
    try:
        collection = SigmaCollection.from_dicts(
            [document], collect_errors=True, source=SigmaRuleLocation(path)
        )
    except SigmaError as exc:
        raise SchemaError(f"pySigma rejects it: {_one_line(exc)}", location=where) from None
    errors = [*collection.errors, *(e for r in collection.rules for e in r.errors)]
    if errors:
        reason = "; ".join(dict.fromkeys(_one_line(e) for e in errors))
        raise SchemaError(f"pySigma rejects it: {reason}", location=where)
    rule = collection.rules[0]
    if rule.id is None:
        raise SchemaError("no `id`: community rules are looked up by it", location=where)
    return rule


def _one_line(exc: BaseException) -> str:
    return re.sub(r"\s+", " ", str(exc)).strip() or type(exc).__name__


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _attack_tags(tags: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Techniques (``T1021.007``) and tactic names (``lateral-movement``) from ``attack.*``."""
    names = [t.split(".", 1)[1].lower() for t in tags if t.lower().startswith("attack.")]
    techniques = sorted({n.upper() for n in names if _TECHNIQUE_TAG.fullmatch(n)})
    tactics = sorted(
        {
            n.replace("_", "-")
            for n in names
            if not _TECHNIQUE_TAG.fullmatch(n) and not _OTHER_ATTACK_TAG.fullmatch(n)
        }
    )
    return tuple(techniques), tuple(tactics)


def _community_rule(rule: Any, text: str, relpath: str) -> CommunityRule:
    tags = tuple(str(t) for t in rule.tags)
    techniques, tactics = _attack_tags(tags)
    logsource = getattr(rule, "logsource", None)
    return CommunityRule(
        id=str(rule.id),
        title=rule.title or str(rule.id),
        description=(rule.description or "").strip(),
        status=rule.status.name.lower() if rule.status else None,
        level=rule.level.name.lower() if rule.level else None,
        author=(rule.author or "").strip(),
        date=_iso(rule.date),
        modified=_iso(rule.modified),
        product=logsource.product if logsource else None,
        category=logsource.category if logsource else None,
        service=logsource.service if logsource else None,
        techniques=techniques,
        tactics=tactics,
        tags=tags,
        references=tuple(str(r) for r in rule.references or ()),
        false_positives=tuple(str(f) for f in rule.falsepositives or ()),
        yaml=text,
        path=relpath,
        source_url=UPSTREAM_BLOB + relpath,
    )
