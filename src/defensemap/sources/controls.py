"""Read the controls an organisation has in place: a CSV or YAML file of (framework,
capability id, status). A file is taken whole or refused whole: every bad row is an error
naming the file and line (CSV) or the YAML pointer, so nothing half-read reaches the store."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from defensemap.errors import ParseError, SchemaError, SourceError, SourceLocation
from defensemap.model.coverage import ControlInPlace, ControlStatus
from defensemap.model.mappings import FRAMEWORK_ALIASES, FRAMEWORK_LABELS, capability_key
from defensemap.sources.files import read_text
from defensemap.sources.validation import pointer_token
from defensemap.sources.yamlfiles import load_yaml

STATUSES: tuple[ControlStatus, ...] = ("implemented", "partial", "planned", "not-applicable")
_STATUS_SPELLINGS: dict[str, ControlStatus] = {
    **{s: s for s in STATUSES},
    "n/a": "not-applicable",
    "na": "not-applicable",
    "not applicable": "not-applicable",
    "not_applicable": "not-applicable",
    "partially implemented": "partial",
    "partially": "partial",
}
_ID_COLUMNS = ("capability_id", "capability", "control", "control_id")
Located = tuple[ControlInPlace, SourceLocation]
_YAML_HINT = (
    "write a list of {framework, capability_id, status} mappings, or"
    " {framework: {capability id: status}}"
)


def _squash(text: str) -> str:
    """Lower case without separators: ``NIST 800-53``, ``nist_800_53`` → ``nist80053``."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


_FRAMEWORKS: dict[str, str] = {
    **{_squash(key): key for key in FRAMEWORK_LABELS},
    **{_squash(label): key for key, label in FRAMEWORK_LABELS.items()},
    **{_squash(alias): key for alias, key in FRAMEWORK_ALIASES.items()},
    _squash("microsoft"): "m365",
    _squash("nist 800 53"): "nist_800_53",
}


def framework_key(name: str) -> str | None:
    """The framework id the mappings store uses for a name users type (``NIST 800-53``,
    ``Microsoft 365``, ``CSA CCM``); ``None`` when it is no known framework."""
    return _FRAMEWORKS.get(_squash(name))


def control_status(text: str) -> ControlStatus | None:
    """``implemented``/``partial``/``planned``/``not-applicable`` (``N/A`` … accepted)."""
    return _STATUS_SPELLINGS.get(" ".join(text.strip().casefold().split()))


def load_controls(path: Path) -> list[ControlInPlace]:
    """Every control of a ``.csv`` or ``.yaml``/``.yml`` file, in file order."""
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".yaml", ".yml"}:
        raise SourceError(
            f"cannot tell the format of {path.name!r}",
            location=SourceLocation(path=str(path)),
            hint="name the file .csv or .yaml",
        )
    text = read_text(path)
    read = _read_csv(text, path) if suffix == ".csv" else _read_yaml(text, path)
    return _refuse_duplicates(read)


# --- CSV ---------------------------------------------------------------------------------------


def _read_csv(text: str, path: Path) -> Iterator[Located]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        header = next(reader, None)
        if header is None:
            raise SchemaError(
                "the file is empty",
                location=SourceLocation(path=str(path)),
                hint="the first line names the columns: framework,capability_id,status",
            )
        columns = _columns(header, path)
        start = reader.line_num + 1
        for row in reader:
            if any(cell.strip() for cell in row):
                yield _csv_control(row, columns, path, start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ParseError(
            f"not valid CSV: {exc}",
            location=SourceLocation(path=str(path), line=start),
            hint="check the quoting on that line",
        ) from None


def _columns(header: list[str], path: Path) -> dict[str, int]:
    names = ["_".join(h.strip().casefold().split()) for h in header]
    found = {name: i for i, name in reversed(list(enumerate(names)))}
    id_column = next((c for c in _ID_COLUMNS if c in found), None)
    missing = [c for c in ("framework", "status") if c not in found]
    if id_column is None:
        missing.insert(1, "capability_id")
    if missing:
        raise SchemaError(
            f"missing column(s) {', '.join(missing)} (header: {', '.join(header)})",
            location=SourceLocation(path=str(path), line=1),
            hint="the first line names the columns: framework,capability_id,status"
            "[,framework_version]",
        )
    columns = {"framework": found["framework"], "capability_id": found[str(id_column)]}
    columns["status"] = found["status"]
    if "framework_version" in found:
        columns["framework_version"] = found["framework_version"]
    return columns


def _csv_control(row: list[str], columns: dict[str, int], path: Path, line: int) -> Located:
    values = {key: row[i].strip() if i < len(row) else "" for key, i in columns.items()}
    where = SourceLocation(path=str(path), line=line)
    return _control(values, lambda _field: where, f"{path.name}:{line}")


# --- YAML --------------------------------------------------------------------------------------


def _read_yaml(text: str, path: Path) -> Iterator[Located]:
    data = load_yaml(text, path)
    if isinstance(data, list):
        yield from _yaml_list(data, path)
    elif isinstance(data, dict):
        yield from _yaml_tree(data, path)
    else:
        raise SchemaError(
            "expected a list of controls or a mapping of frameworks",
            location=SourceLocation(path=str(path), pointer=""),
            hint=_YAML_HINT,
        )


def _yaml_list(items: list[Any], path: Path) -> Iterator[Located]:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise SchemaError(
                "expected a mapping",
                location=SourceLocation(path=str(path), pointer=f"/{index}"),
                hint=_YAML_HINT,
            )
        values = {"_".join(str(k).casefold().split()): _scalar(v) for k, v in item.items()}
        id_key = next((k for k in _ID_COLUMNS if k in values), "capability_id")
        values["capability_id"] = values.get(id_key, "")

        def where(key: str, index: int = index, id_key: str = id_key) -> SourceLocation:
            name = id_key if key == "capability_id" else key
            return SourceLocation(path=str(path), pointer=f"/{index}/{name}")

        yield _control(values, where, f"{path.name}#/{index}")


def _yaml_tree(tree: dict[Any, Any], path: Path) -> Iterator[Located]:
    for framework, capabilities in tree.items():
        pointer = f"/{pointer_token(framework)}"
        if not isinstance(capabilities, dict):
            raise SchemaError(
                "expected a mapping of capability id to status",
                location=SourceLocation(path=str(path), pointer=pointer),
                hint=_YAML_HINT,
            )
        for capability, status in capabilities.items():
            item_pointer = f"{pointer}/{pointer_token(capability)}"
            values = {
                "framework": str(framework),
                "capability_id": _scalar(capability),
                "status": _scalar(status),
            }

            def where(key: str, a: str = pointer, b: str = item_pointer) -> SourceLocation:
                return SourceLocation(path=str(path), pointer=a if key == "framework" else b)

            yield _control(values, where, f"{path.name}#{item_pointer}")


def _scalar(value: Any) -> str:
    return "" if value is None or isinstance(value, dict | list) else str(value).strip()


def _control(
    values: dict[str, str], where: Callable[[str], SourceLocation], source: str
) -> Located:
    """A row's control, or the error naming the first bad field."""
    framework = framework_key(values.get("framework", ""))
    if framework is None:
        raise SchemaError(
            f"unknown framework {values.get('framework', '')!r}",
            location=where("framework"),
            hint=f"use one of {', '.join(FRAMEWORK_LABELS)}",
        )
    capability = values.get("capability_id", "")
    if not capability:
        raise SchemaError(
            "no capability id",
            location=where("capability_id"),
            hint="give the mapped capability, e.g. IA-05",
        )
    status = control_status(values.get("status", ""))
    if status is None:
        raise SchemaError(
            f"unknown status {values.get('status', '')!r}",
            location=where("status"),
            hint=f"use one of {', '.join(STATUSES)}",
        )
    version = values.get("framework_version") or None
    control = ControlInPlace(framework, capability, status, version, source)
    return control, where("capability_id")


def _refuse_duplicates(read: Iterator[Located]) -> list[ControlInPlace]:
    """The same capability twice (``IA-5`` and ``IA-05`` are one NIST control) would leave
    its status to file order: refuse it."""
    seen: dict[tuple[str, str, str], ControlInPlace] = {}
    for control, where in read:
        key = (
            control.framework,
            capability_key(control.framework, control.capability_id),
            (control.framework_version or "").casefold(),
        )
        if key in seen:
            raise SchemaError(
                f"{control.framework} {control.capability_id} is listed twice"
                f" (first at {seen[key].source})",
                location=where,
                hint="keep one row per capability",
            )
        seen[key] = control
    return list(seen.values())
