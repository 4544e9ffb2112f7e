"""Read a team's existing detection rules, whatever tool they live in, for their ATT&CK
techniques, name, enabled state, query language and (where the format says) the data they
need: Microsoft Sentinel analytic rules (repository YAML or an ARM export), Elastic/Kibana
rule exports (NDJSON), Sigma rules and Splunk ``savedsearches.conf``.

The format is detected per file. A malformed rule file is an error naming the file and place
(the import is refused whole); files in a folder that are not rules at all are skipped and
listed with why. Rules without any ATT&CK technique are kept: coverage ignores them, the
import summary counts them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from defensemap.errors import ParseError, SchemaError, SourceError, SourceLocation
from defensemap.model.coverage import DeployedRule, RuleOrigin
from defensemap.model.rulesets import ReadRule, RuleFormat, RuleSetRead, SkippedFile
from defensemap.sources.files import read_text
from defensemap.sources.yamlfiles import load_yaml_documents

ORIGIN: dict[RuleFormat, RuleOrigin] = {
    "sentinel-yaml": "sentinel",
    "sentinel-arm": "sentinel",
    "elastic-ndjson": "elastic",
    "sigma": "sigma",
    "splunk": "splunk",
}
_CANDIDATE_SUFFIXES = {".yml", ".yaml", ".json", ".ndjson"}
_SPLUNK_FILE = "savedsearches.conf"
_TECHNIQUE = re.compile(r"T\d{4}(?:\.\d{3})?")
_TACTIC = re.compile(r"TA\d{4}")
_SIGMA_TECHNIQUE_TAG = re.compile(r"attack\.(t\d{4}(?:\.\d{3})?)")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_SENTINEL_KEYS = {"relevantTechniques", "requiredDataConnectors", "queryFrequency", "tactics"}
FORMATS_HINT = (
    "pass Sentinel analytic rules (YAML or ARM JSON), a Kibana rules export (.ndjson), Sigma"
    " rules or a Splunk savedsearches.conf"
)


class NotARuleFile(Exception):
    """The file is readable but in none of the rule formats (skipped in a folder)."""


def load_rule_set(path: Path) -> list[DeployedRule]:
    """Every rule of a rule file or a folder of them, whatever the format."""
    return read_rule_set([path]).rules


def read_rule_set(
    paths: Sequence[Path], on_progress: Callable[[int, int], None] | None = None
) -> RuleSetRead:
    """Read rule files and folders; ``on_progress(done, total)`` follows the files. The first
    rule with an id wins, later ones are skipped and listed."""
    files = _collect(paths)
    read = RuleSetRead(sources=[str(p) for p in paths], files=len(files))
    formats: Counter[str] = Counter()
    seen: dict[str, str] = {}
    for done, (path, named) in enumerate(files):
        if on_progress is not None:
            on_progress(done, len(files))
        for item in _read_file(path, named, read.skipped):
            key = item.rule.id.casefold()
            if key in seen:
                read.skipped.append(
                    SkippedFile(item.rule.source, f"id {item.rule.id} is also used by {seen[key]}")
                )
                continue
            seen[key] = item.rule.source
            read.rules.append(item.rule)
            formats[item.format] += 1
    read.by_format = dict(formats.most_common())
    return read


def _collect(paths: Iterable[Path]) -> list[tuple[Path, bool]]:
    """Files to read, each with whether the user named it (a named file must be a rule file;
    files found in a folder may be anything)."""
    files: list[tuple[Path, bool]] = []
    for path in paths:
        if path.is_dir():
            files += [(p, False) for p in sorted(path.rglob("*")) if _candidate(p, path)]
        elif path.is_file():
            files.append((path, True))
        else:
            raise SourceError(
                "no such file or folder", location=SourceLocation(path=str(path)), hint=FORMATS_HINT
            )
    return files


def _candidate(path: Path, root: Path) -> bool:
    hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
    suffix_ok = path.suffix.lower() in _CANDIDATE_SUFFIXES or path.name.lower() == _SPLUNK_FILE
    return suffix_ok and not hidden and path.is_file()


def _read_file(path: Path, named: bool, skipped: list[SkippedFile]) -> list[ReadRule]:
    try:
        return list(_rules_of(path, read_text(path, "export the rules again as UTF-8"), skipped))
    except NotARuleFile as reason:
        if named:
            raise SchemaError(
                f"not a rule file: {reason}",
                location=SourceLocation(path=str(path)),
                hint=FORMATS_HINT,
            ) from None
        skipped.append(SkippedFile(str(path), str(reason)))
        return []


def _rules_of(path: Path, text: str, skipped: list[SkippedFile]) -> Iterator[ReadRule]:
    suffix = path.suffix.lower()
    if suffix == ".conf":
        yield from _splunk(path, text, skipped)
    elif suffix == ".ndjson" or (suffix == ".json" and _looks_like_ndjson(text)):
        yield from _elastic(path, text, skipped)
    elif suffix == ".json":
        yield from _sentinel_arm(path, text)
    elif suffix in {".yml", ".yaml"}:
        yield from _yaml_rules(path, text)
    else:
        raise NotARuleFile(f"unknown file type {suffix or '(none)'}")


# --- shared pieces ---------------------------------------------------------------------------


def _techniques(values: Any, where: Callable[[int | None], SourceLocation]) -> list[str]:
    """ATT&CK technique ids (``T1234``, ``T1234.001``), upper-cased; tactic ids are ignored,
    anything else is an error at its place."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [v for v in re.split(r"[,\s]+", values) if v]
    if not isinstance(values, list):
        raise SchemaError("expected a list of ATT&CK technique ids", location=where(None))
    found = []
    for index, value in enumerate(values):
        text = str(value).strip().upper()
        if _TECHNIQUE.fullmatch(text):
            found.append(text)
        elif not _TACTIC.fullmatch(text):
            raise SchemaError(
                f"{value!r} is not an ATT&CK technique id",
                location=where(index),
                hint="write technique ids like T1059 or T1059.001",
            )
    return found


def _ordered(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(ids)))


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if isinstance(value, list):
        return tuple(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))
    return ()


def _required(doc: dict[str, Any], key: str, where: SourceLocation) -> str:
    value = doc.get(key)
    if not isinstance(value, str | int) or not str(value).strip():
        raise SchemaError(f"the rule has no {key}", location=where, hint=FORMATS_HINT)
    return str(value).strip()


def _flag(value: Any, default: bool, where: SourceLocation) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise SchemaError(f"enabled is {value!r}, expected true or false", location=where)


def _pointer(path: Path, pointer: str, line: int | None = None) -> SourceLocation:
    return SourceLocation(path=str(path), line=line, pointer=pointer)


# --- YAML: Sentinel analytic rules and Sigma ----------------------------------------------------


def _yaml_rules(path: Path, text: str) -> Iterator[ReadRule]:
    documents = load_yaml_documents(text, path)
    if not documents:
        raise NotARuleFile("empty YAML file")
    kinds = [_yaml_kind(d) for d in documents]
    if None in kinds:
        raise NotARuleFile("YAML that is neither a Sentinel analytic rule nor a Sigma rule")
    for index, (document, kind) in enumerate(zip(documents, kinds, strict=True)):
        suffix = f"[{index + 1}]" if len(documents) > 1 else ""
        if kind == "sigma":
            yield ReadRule(_sigma(path, document, suffix), "sigma")
        else:
            yield ReadRule(_sentinel_yaml(path, document), "sentinel-yaml")


def _yaml_kind(document: Any) -> RuleFormat | None:
    if not isinstance(document, dict):
        return None
    if "title" in document and ("detection" in document or "correlation" in document):
        return "sigma"
    if "query" in document and "name" in document and _SENTINEL_KEYS & document.keys():
        return "sentinel-yaml"
    return None


def _sentinel_yaml(path: Path, doc: dict[str, Any]) -> DeployedRule:
    techniques = [
        *_techniques(
            doc.get("relevantTechniques"), lambda i: _pointer(path, _at("/relevantTechniques", i))
        ),
        *_techniques(doc.get("subTechniques"), lambda i: _pointer(path, _at("/subTechniques", i))),
    ]
    return DeployedRule(
        id=_required(doc, "id", _pointer(path, "/id")),
        name=_required(doc, "name", _pointer(path, "/name")),
        origin="sentinel",
        techniques=_ordered(techniques),
        enabled=_flag(doc.get("enabled"), True, _pointer(path, "/enabled")),
        language="kql",
        tables=_data_types(doc.get("requiredDataConnectors")),
        source=str(path),
    )


def _at(pointer: str, index: int | None) -> str:
    return pointer if index is None else f"{pointer}/{index}"


def _data_types(connectors: Any) -> tuple[str, ...]:
    """Tables the rule reads, from ``requiredDataConnectors[].dataTypes``."""
    if not isinstance(connectors, list):
        return ()
    tables = [t for c in connectors if isinstance(c, dict) for t in _strings(c.get("dataTypes"))]
    return tuple(dict.fromkeys(tables))


def _sigma(path: Path, doc: dict[str, Any], suffix: str) -> DeployedRule:
    tags = [str(t).strip().casefold() for t in doc.get("tags") or [] if isinstance(t, str)]
    techniques = [m.group(1).upper() for t in tags if (m := _SIGMA_TECHNIQUE_TAG.fullmatch(t))]
    ident = doc.get("id")
    logsource = doc.get("logsource")
    if not isinstance(logsource, dict):
        logsource = {}
    return DeployedRule(
        id=str(ident).strip() if ident else f"{path.stem}{suffix}",
        name=_required(doc, "title", _pointer(path, "/title")),
        origin="sigma",
        techniques=_ordered(techniques),
        enabled=str(doc.get("status") or "").strip().casefold() != "deprecated",
        language="sigma",
        logsource="/".join(
            str(logsource[k]) for k in ("product", "category", "service") if logsource.get(k)
        ),
        source=f"{path}{suffix}",
    )


# --- JSON: Sentinel ARM export ------------------------------------------------------------------


def _json(path: Path, text: str, line: int | None = None) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ParseError(
            f"not valid JSON: {exc.msg}",
            location=SourceLocation(
                path=str(path), line=line or exc.lineno, column=None if line else exc.colno
            ),
            hint="export the rules again",
        ) from None


def _sentinel_arm(path: Path, text: str) -> Iterator[ReadRule]:
    document = _json(path, text)
    resources = document.get("resources") if isinstance(document, dict) else None
    if not isinstance(resources, list):
        raise NotARuleFile("JSON that is not an ARM template (no `resources` list)")
    rules = [(i, r) for i, r in enumerate(resources) if _is_alert_rule(r)]
    if not rules:
        raise NotARuleFile("an ARM template without Sentinel alert rules")
    for index, resource in rules:
        yield ReadRule(_arm_rule(path, index, resource), "sentinel-arm")


def _is_alert_rule(resource: Any) -> bool:
    kind = resource.get("type") if isinstance(resource, dict) else None
    return isinstance(kind, str) and kind.casefold().endswith("/alertrules")


def _arm_rule(path: Path, index: int, resource: dict[str, Any]) -> DeployedRule:
    base = f"/resources/{index}"
    props = resource.get("properties")
    if not isinstance(props, dict):
        raise SchemaError("the alert rule has no properties", location=_pointer(path, base))
    techniques = [
        *_techniques(
            props.get("techniques"),
            lambda i: _pointer(path, _at(f"{base}/properties/techniques", i)),
        ),
        *_techniques(
            props.get("subTechniques"),
            lambda i: _pointer(path, _at(f"{base}/properties/subTechniques", i)),
        ),
    ]
    query = props.get("query")
    return DeployedRule(
        id=_arm_id(resource, props) or f"{path.name}{base}",
        name=_required(props, "displayName", _pointer(path, f"{base}/properties/displayName")),
        origin="sentinel",
        techniques=_ordered(techniques),
        enabled=_flag(props.get("enabled"), True, _pointer(path, f"{base}/properties/enabled")),
        language="kql" if isinstance(query, str) and query.strip() else "",
        source=f"{path}#{base}",
    )


def _arm_id(resource: dict[str, Any], props: dict[str, Any]) -> str | None:
    """The rule's GUID: the last one in the resource name (``…/alertRules/<guid>`` or an ARM
    expression ending in it), else the template it was created from."""
    for value in (resource.get("name"), props.get("alertRuleTemplateName"), resource.get("id")):
        if isinstance(value, str) and (found := _GUID.findall(value)):
            return str(found[-1]).lower()
    return None


# --- NDJSON: Kibana rules export ----------------------------------------------------------------


def _looks_like_ndjson(text: str) -> bool:
    """A ``.json`` file holding one object per line (a Kibana export saved as .json)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return (
        len(lines) > 1
        and all(line.lstrip().startswith("{") for line in lines[:2])
        and ('"rule_id"' in lines[0])
    )


def _elastic(path: Path, text: str, skipped: list[SkippedFile]) -> Iterator[ReadRule]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines or '"rule_id"' not in text:
        raise NotARuleFile("NDJSON without detection rules (no `rule_id`)")
    for number, line in lines:
        item = _json(path, line, number)
        if not isinstance(item, dict):
            raise SchemaError("expected a JSON object", location=_pointer(path, "", number))
        if "exported_count" in item or "exported_rules_count" in item:
            continue
        if "rule_id" not in item:
            what = "an exception list" if "list_id" in item else "no rule_id"
            skipped.append(SkippedFile(f"{path}:{number}", f"not a detection rule ({what})"))
            continue
        yield ReadRule(_elastic_rule(path, number, item), "elastic-ndjson")


def _elastic_rule(path: Path, line: int, item: dict[str, Any]) -> DeployedRule:
    return DeployedRule(
        id=_required(item, "rule_id", _pointer(path, "/rule_id", line)),
        name=_required(item, "name", _pointer(path, "/name", line)),
        origin="elastic",
        techniques=_ordered(_elastic_techniques(path, line, item.get("threat"))),
        enabled=_flag(item.get("enabled"), True, _pointer(path, "/enabled", line)),
        language=str(item.get("language") or item.get("type") or ""),
        tables=_strings(item.get("index")),
        source=f"{path}:{line}",
    )


def _elastic_techniques(path: Path, line: int, threat: Any) -> list[str]:
    """``threat[].technique[].id`` and ``.subtechnique[].id`` of the MITRE ATT&CK entries."""
    found: list[str] = []
    entries = threat if isinstance(threat, list) else []
    for t, entry in enumerate(entries):
        if (
            not isinstance(entry, dict)
            or "att&ck" not in str(entry.get("framework", "ATT&CK")).casefold()
        ):
            continue
        for k, technique in enumerate(entry.get("technique") or []):
            base = f"/threat/{t}/technique/{k}"
            found += _ids_of(path, line, base, technique)
            for s, sub in enumerate(technique.get("subtechnique") or []):
                found += _ids_of(path, line, f"{base}/subtechnique/{s}", sub)
    return found


def _ids_of(path: Path, line: int, pointer: str, entry: Any) -> list[str]:
    ident = entry.get("id") if isinstance(entry, dict) else None
    return _techniques([ident], lambda _i: _pointer(path, f"{pointer}/id", line))


# --- Splunk savedsearches.conf ------------------------------------------------------------------


@dataclass
class _Stanza:
    name: str
    line: int
    keys: dict[str, tuple[str, int]] = field(default_factory=dict)


def _splunk(path: Path, text: str, skipped: list[SkippedFile]) -> Iterator[ReadRule]:
    stanzas = _stanzas(path, text)
    if not stanzas:
        raise NotARuleFile("a .conf file without [stanzas]")
    for stanza in stanzas:
        if stanza.name == "default":
            continue
        if "search" not in stanza.keys:
            skipped.append(SkippedFile(f"{path}:{stanza.line}", "stanza without a search"))
            continue
        yield ReadRule(_splunk_rule(path, stanza), "splunk")


def _stanzas(path: Path, text: str) -> list[_Stanza]:
    """``[name]`` sections of ``key = value`` lines (a trailing backslash continues a line); a
    repeated section adds to and overrides the earlier one, as Splunk layers its files."""
    stanzas: dict[str, _Stanza] = {}
    current: _Stanza | None = None
    for number, line in _logical_lines(text):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            name = stripped[1:-1].strip()
            current = stanzas.setdefault(name, _Stanza(name, number))
        elif "=" in stripped and current is not None:
            key, value = stripped.split("=", 1)
            current.keys[key.strip()] = (value.strip(), number)
        else:
            raise ParseError(
                "expected [stanza] or key = value",
                location=SourceLocation(path=str(path), line=number),
                hint="check the line, or continue a long value with a trailing backslash",
            )
    return list(stanzas.values())


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    start, buffer = 0, ""
    for number, line in enumerate(text.splitlines(), 1):
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + "\n"
            continue
        yield start, buffer + line
        buffer = ""
    if buffer:
        yield start, buffer


def _splunk_rule(path: Path, stanza: _Stanza) -> DeployedRule:
    keys = stanza.keys
    disabled, _ = keys.get("disabled", ("0", 0))
    label, _ = keys.get("action.correlationsearch.label", ("", 0))
    return DeployedRule(
        id=stanza.name,
        name=label or stanza.name,
        origin="splunk",
        techniques=_ordered(_annotations(path, keys)),
        enabled=disabled.strip().casefold() not in {"1", "true", "t", "yes", "y"},
        language="spl",
        source=f"{path}:{stanza.line}",
    )


def _annotations(path: Path, keys: dict[str, tuple[str, int]]) -> list[str]:
    """``mitre_attack`` ids of ``action.correlationsearch.annotations`` (a JSON object)."""
    text, line = keys.get("action.correlationsearch.annotations", ("", 0))
    if not text:
        return []
    data = _json(path, text, line)
    if not isinstance(data, dict):
        raise SchemaError(
            "annotations are not a JSON object", location=SourceLocation(path=str(path), line=line)
        )
    return _techniques(
        data.get("mitre_attack"), lambda i: _pointer(path, _at("/mitre_attack", i), line)
    )
