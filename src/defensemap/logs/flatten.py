"""Flatten Windows events, in the JSON form EVTX parsers produce, to Sigma's field names.

``evtx.PyEvtxParser(path).records_json()`` (and tools exporting EVTX to JSON) give one
nested document per event::

    {"Event": {"System": {"EventID": 1, "Provider": {"#attributes": {"Name": ...}}, ...},
               "EventData": {"Image": ..., "CommandLine": ...}}}

Sigma rules, the Sysmon/Windows pipelines and analysts expect one flat record::

    {"EventID": 1, "Provider_Name": ..., "Channel": ..., "Image": ..., "CommandLine": ...}

XML attributes arrive as ``{"#attributes": {...}}`` and element text as ``{"#text": ...}``;
both conventions are unwrapped. Values that stay structured (lists, objects) become JSON
text. The function never raises, whatever the input's shape: logs are untrusted input.

The returned keys are unique ignoring case, because they become SQL columns (case-insensitive
in DuckDB). When an event field and a ``System`` field share a name:

* the ``System`` header fields Sigma rules match on (``EventID``, ``Channel``,
  ``Provider_Name``, ``Computer``, ``TimeCreated``, ...) keep it, and the event field is
  renamed after its section (``UserData_Channel`` for the log-cleared event 104);
* the logging process's ``Execution`` ids and the ``Security`` user id give way: Sysmon's
  ``ProcessId`` in ``EventData`` is what rules mean, so ``System``'s ``ProcessID`` becomes
  ``System_ProcessID``.

Any other clash gets a numeric suffix (``Image_2``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

__all__ = ["RESERVED_KEYS", "flatten_event", "is_evtx_json"]

# Column names the ingest layer adds itself (engine.duck.PROVENANCE_COLUMNS); an event field
# of the same name is renamed rather than overwriting where the row came from.
RESERVED_KEYS = ("_dm_source", "_dm_record")

_ATTRS = "#attributes"
_TEXT = "#text"
_MAX_DEPTH = 32
_INT64 = (-(2**63), 2**63 - 1)

# System children whose attributes are named without the element prefix.
_BARE_ATTRIBUTES = {"Execution", "Correlation", "Security"}
_SYSTEM_ATTRIBUTE_NAMES = {("TimeCreated", "SystemTime"): "TimeCreated"}


def is_evtx_json(record: object) -> bool:
    """True for an EVTX event in JSON form: ``{"Event": {"System": {...}, ...}}``."""
    if not isinstance(record, Mapping):
        return False
    event = record.get("Event")
    return isinstance(event, Mapping) and isinstance(event.get("System"), Mapping)


def flatten_event(record: Mapping[str, Any]) -> dict[str, Any]:
    """One flat row for an EVTX JSON record (see the module docstring for the names).

    ``EventID`` is an int (None when the record's is not a number; the raw value is then
    kept as ``EventID_raw``); other scalar values keep their JSON type; objects and lists
    are JSON text. A record that is not an event is flattened the same way from its top
    level; a non-mapping gives ``{}``.
    """
    out = _Row()
    if not isinstance(record, Mapping):
        return out.data
    event = record.get("Event")
    body: Mapping[Any, Any] = event if isinstance(event, Mapping) else record
    system = body.get("System")
    if isinstance(system, Mapping):
        for key, value, strong in _system_fields(system):
            out.add_system(key, value, strong=strong)
    elif "System" in body:
        out.add_system("System", _scalar(system), strong=True)
    out.reserve("EventID")  # always the header's (an int column), even when absent
    for key, value in body.items():
        name = _key(key)
        if name in {"System", _ATTRS}:
            continue
        if name == "EventData":
            pairs: Iterable[tuple[str, Any]] = _event_data(value)
        elif name == "UserData":
            pairs = _leaves(value, (), 0)
        elif name == "RenderingInfo":
            pairs = ((f"RenderingInfo_{k}", v) for k, v in _leaves(value, (), 0))
        elif isinstance(value, Mapping):
            pairs = _leaves(value, (name,), 0)
        else:
            pairs = [(name, _scalar(value))]
        for field, field_value in pairs:
            out.add_data(field, field_value, section=name)
    return out.data


class _Row:
    """An output row whose keys stay unique ignoring case (see the module docstring)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self._folded: dict[str, str] = {k.casefold(): k for k in RESERVED_KEYS}
        self._weak: set[str] = set()  # System fields that give way to event fields
        self._strong: set[str] = set()  # System fields that keep their name

    def add_system(self, key: str, value: Any, *, strong: bool) -> None:
        name = self._free(key)
        self._put(name, value)
        (self._strong if strong else self._weak).add(name)

    def reserve(self, key: str) -> None:
        """Keep ``key`` for a System field even if the record has none."""
        if key.casefold() not in self._folded:
            self._folded[key.casefold()] = key
            self._strong.add(key)

    def add_data(self, key: str, value: Any, *, section: str) -> None:
        taken = self._folded.get(key.casefold())
        if taken is not None and taken in self._weak:
            moved = self.data.pop(taken)
            del self._folded[taken.casefold()]
            self._weak.discard(taken)
            self.add_system(f"System_{taken}", moved, strong=False)
            self._put(key, value)
        elif taken is not None and taken in self._strong and section != key:
            self._put(self._free(f"{section}_{key}"), value)
        else:
            self._put(self._free(key), value)

    def _free(self, key: str) -> str:
        if key.casefold() not in self._folded:
            return key
        n = 2
        while f"{key}_{n}".casefold() in self._folded:
            n += 1
        return f"{key}_{n}"

    def _put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self._folded[key.casefold()] = key


def _system_fields(system: Mapping[Any, Any]) -> Iterator[tuple[str, Any, bool]]:
    """(name, value, strong) for each System field; see the module docstring for strong."""
    for raw_key, value in system.items():
        key = _key(raw_key)
        if key == _ATTRS:
            continue
        if key == "EventID":
            for name, item in _event_id(value):
                yield name, item, True
        elif isinstance(value, Mapping):
            bare = key in _BARE_ATTRIBUTES
            for name, item in _element(key, value, bare=bare):
                yield name, item, not bare
        elif value is not None:
            yield key, _scalar(value), True


def _element(name: str, value: Mapping[Any, Any], *, bare: bool) -> Iterator[tuple[str, Any]]:
    """An XML element as JSON: its attributes, its text, and any child elements."""
    attributes = value.get(_ATTRS)
    if isinstance(attributes, Mapping):
        for raw_attr, attr_value in attributes.items():
            attr = _key(raw_attr)
            field = _SYSTEM_ATTRIBUTE_NAMES.get((name, attr))
            if field is None:
                field = attr if bare else f"{name}_{attr}"
            yield field, _scalar(attr_value)
    elif attributes is not None:
        yield f"{name}_attributes", _scalar(attributes)
    if _TEXT in value:
        yield name, _scalar(value[_TEXT])
    for raw_key, child in value.items():
        key = _key(raw_key)
        if key not in {_ATTRS, _TEXT}:
            yield f"{name}_{key}", _scalar(child)


def _event_id(value: Any) -> Iterator[tuple[str, Any]]:
    raw = value
    if isinstance(value, Mapping):
        attributes = value.get(_ATTRS)
        if isinstance(attributes, Mapping):
            for raw_attr, attr_value in attributes.items():
                yield _key(raw_attr), _scalar(attr_value)
        raw = value.get(_TEXT)
    number = _to_int(raw)
    yield "EventID", number
    if number is None and raw is not None:
        yield "EventID_raw", _scalar(raw)


def _event_data(value: Any) -> Iterator[tuple[str, Any]]:
    """EventData: named values as columns; unnamed ``<Data>`` values collected as ``Data``."""
    unnamed: list[Any] = []
    if isinstance(value, Mapping):
        for raw_key, item in value.items():
            key = _key(raw_key)
            if key == _ATTRS:
                continue
            if key == "Data":
                yield from _data_items(item, unnamed)
            elif key == _TEXT:
                unnamed.append(_scalar(item))
            else:
                yield key, _value(item)
    elif isinstance(value, list):
        yield from _data_items(value, unnamed)
    elif value is not None:
        unnamed.append(_scalar(value))
    if len(unnamed) == 1:
        yield "Data", unnamed[0]
    elif unnamed:
        yield "Data", _json(unnamed)


def _data_items(value: Any, unnamed: list[Any]) -> Iterator[tuple[str, Any]]:
    """``Data`` as a list of ``{"#attributes": {"Name": n}, "#text": v}``, or one of them."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, Mapping):
            attributes = item.get(_ATTRS)
            name = attributes.get("Name") if isinstance(attributes, Mapping) else None
            text = _scalar(item.get(_TEXT)) if _TEXT in item else _value(item)
            if isinstance(name, str) and name:
                yield name, text
            else:
                unnamed.append(text)
        elif item is not None:
            unnamed.append(_scalar(item))


def _leaves(value: Any, path: tuple[str, ...], depth: int) -> Iterator[tuple[str, Any]]:
    """Leaf values of a nested element (UserData and the like), each under its own name;
    a name already used gets its whole path (``LogFileCleared_SubjectUserName``)."""
    if depth > _MAX_DEPTH or not isinstance(value, Mapping):
        if path:
            yield _leaf_name(path), _scalar(value)
        elif value is not None:
            yield "UserData", _scalar(value)
        return
    for raw_key, child in value.items():
        key = _key(raw_key)
        if key == _ATTRS:
            if isinstance(child, Mapping):
                for raw_attr, attr_value in child.items():
                    attr = _key(raw_attr)
                    if not attr.startswith("xmlns"):
                        yield _leaf_name((*path, attr)), _scalar(attr_value)
            continue
        if key == _TEXT:
            yield _leaf_name(path or ("Text",)), _scalar(child)
            continue
        yield from _leaves(child, (*path, key), depth + 1)


def _leaf_name(path: tuple[str, ...]) -> str:
    # The leaf's own name; _Row makes it unique. The full path is kept for readers only
    # when the last element is too generic to stand alone.
    last = path[-1]
    if last in {"Data", "Text", "Value"} and len(path) > 1:
        return "_".join(path[-2:])
    return last


def _value(value: Any) -> Any:
    """An element's value: its text when it is ``{"#text": ...}``, else scalar or JSON."""
    if isinstance(value, Mapping) and _TEXT in value:
        return _scalar(value[_TEXT])
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, Mapping) and set(value) == {_TEXT}:
        return _scalar(value[_TEXT])
    return _json(value)


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    except (TypeError, ValueError):
        try:
            return json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            return str(value)


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdecimal():
            number = int(text)
    if number is None or not _INT64[0] <= number <= _INT64[1]:
        return None
    return number


def _key(key: Any) -> str:
    text = key if isinstance(key, str) else str(key)
    return text or "_"
