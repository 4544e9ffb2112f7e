"""Which pySigma processing pipelines map a Sigma rule onto which ingested table.

Three kinds of table:

``WindowsEvents`` (flattened EVTX: EventData keys as columns plus EventID, Channel, Computer,
Provider_Name; Sysmon and Security field names as Windows writes them)
    Converted with pySigma's own pipelines, so the logsource selects its events. Two variants,
    OR-ed together when both apply:

    * ``sysmon``: ``sysmon_pipeline() + windows_logsource_pipeline()``; ``process_creation``
      becomes ``EventID = 1`` on ``Channel = 'Microsoft-Windows-Sysmon/Operational'``, a
      ``service: security`` rule gets ``Channel = 'Security'`` and so on. Fields stay as written.
    * ``windows-audit``: ``windows_audit_pipeline() + windows_logsource_pipeline()`` for the
      categories Windows auditing also records (``process_creation`` = Security 4688 with
      ``NewProcessName``/``ParentProcessName``; ``registry_*`` = 4657). A rule using a field 4657
      lacks (``EventType``...) simply has no audit variant.

    A rule neither variant maps (another product, a category Sysmon does not log) is not
    applicable to this table.

Defender XDR tables (``DeviceProcessEvents``, ``DeviceNetworkEvents``, ...)
    pySigma-backend-kusto's ``microsoft_xdr_pipeline()`` is reused as is for table choice and
    field mapping: its first item stores the chosen table in the pipeline state under
    ``query_table`` (from the logsource category, else from an EventID in a ``sel*`` section);
    the backend reads that state and the rule is routed to that table. Two kinds of item are
    left out: the KQL post-processing that prepends ``<table> | where`` (we emit SQL), and the
    "invalid field for this table" failures, because a field the table lacks becomes a NULL
    (false) condition reported as a per-rule warning, the same as for every other table. A rule
    for which the pipeline finds no table ("Unable to determine table name") or whose table was
    not ingested is not applicable.

any other table
    No field mapping: a rule applies when every field it references is a column of the table
    (case-insensitively), and is not applicable otherwise (keyword-only rules included).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Literal, cast

from sigma.pipelines.microsoftxdr.mappings import (
    CATEGORY_TO_TABLE_MAPPINGS,
    EVENTID_CATEGORY_TO_TABLE_MAPPINGS,
    MICROSOFT_XDR_FIELD_MAPPINGS,
)
from sigma.pipelines.microsoftxdr.microsoftxdr import microsoft_xdr_pipeline
from sigma.pipelines.windows.windows import (
    generic_logsource_to_windows_audit_event_mapping,
    windows_audit_pipeline,
    windows_logsource_pipeline,
)
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import Placeholder, SigmaFieldReference, SigmaRegularExpression, SigmaString

__all__ = [
    "DEFENDER_TABLES",
    "WINDOWS_EVENTS_TABLE",
    "PipelineVariant",
    "TableKind",
    "defender_field",
    "is_defender_table",
    "referenced_fields",
    "sysmon_pipeline",
    "table_kind",
    "variants_for",
    "xdr_pipeline",
]

WINDOWS_EVENTS_TABLE = "WindowsEvents"

# Every table the Microsoft XDR pipeline can route a rule to.
DEFENDER_TABLES: frozenset[str] = frozenset(
    list(CATEGORY_TO_TABLE_MAPPINGS.values()) + list(EVENTID_CATEGORY_TO_TABLE_MAPPINGS.values())
)

TableKind = Literal["windows", "defender", "generic"]

# Logsource categories Windows auditing records too (process_creation = 4688, registry = 4657).
AUDIT_CATEGORIES: frozenset[str] = frozenset(
    cast(dict[str, object], generic_logsource_to_windows_audit_event_mapping)
)

# The message the XDR pipeline raises when a rule maps to none of its tables.
XDR_NO_TABLE = "Unable to determine table name"
_XDR_DROPPED_ITEMS = (
    "microsoft_xdr_unsupported_fields_",
    "microsoft_xdr_unsupported_rule_category_or_missing_query_table",
)


def sysmon_pipeline() -> ProcessingPipeline:
    """pySigma's Sysmon pipeline, whatever else has been imported. Its ``@Pipeline`` decorator
    keeps one instance for every decorated pipeline, holding the function decorated last, so
    after plugin discovery imports ``sigma.pipelines.test`` the name ``sysmon_pipeline`` builds
    the test pipeline instead."""
    return _sysmon_factory()()


@cache
def _sysmon_factory() -> Callable[[], ProcessingPipeline]:
    """Re-run the sysmon module's decoration (it puts sysmon back on the shared instance) and
    keep its function, which nothing imported later can displace."""
    module = importlib.reload(importlib.import_module("sigma.pipelines.sysmon.sysmon"))
    factory: Callable[[], ProcessingPipeline] = module.sysmon_pipeline.func
    return factory


def table_kind(table: str) -> TableKind:
    if table.casefold() == WINDOWS_EVENTS_TABLE.casefold():
        return "windows"
    if is_defender_table(table):
        return "defender"
    return "generic"


def is_defender_table(table: str) -> bool:
    return table.casefold() in {t.casefold() for t in DEFENDER_TABLES}


def xdr_pipeline() -> ProcessingPipeline:
    """``microsoft_xdr_pipeline()`` without KQL post-processing and without its per-table
    invalid-field failures (unknown fields are NULL + warning in our backend)."""
    original = microsoft_xdr_pipeline()
    original._clear_pipeline()
    items = [
        item
        for item in original.items
        if not (item.identifier or "").startswith(_XDR_DROPPED_ITEMS)
    ]
    return ProcessingPipeline(
        items=items,
        name=original.name,
        priority=original.priority,
        vars=dict(original.vars),
    )


def defender_field(table: str, field: str) -> str:
    """A Sigma (Sysmon taxonomy) field name as the Microsoft XDR mapping names it in ``table``
    (used for correlation group-by fields, which pass through no detection item)."""
    table_map = MICROSOFT_XDR_FIELD_MAPPINGS.table_mappings.get(table, {})
    mapped = table_map.get(field) or MICROSOFT_XDR_FIELD_MAPPINGS.generic_mappings.get(field)
    if isinstance(mapped, list):
        mapped = mapped[0] if mapped else None
    return mapped if isinstance(mapped, str) else field


def is_windows_rule(rule: SigmaRule) -> bool:
    return (rule.logsource.product or "").casefold() == "windows"


def _audit_category(rule: SigmaRule) -> bool:
    return is_windows_rule(rule) and rule.logsource.category in AUDIT_CATEGORIES


def _selects_windows_events(applied: set[str]) -> bool:
    # sysmon_<category>_eventid / windows_logsource_<service> / windows_<category>_channel
    return any(
        i.startswith(("sysmon_", "windows_logsource_")) or i.endswith("_channel") for i in applied
    )


def _selects_audit_events(applied: set[str]) -> bool:
    return any(i.startswith("windows_") and i.endswith("_condition") for i in applied)


def _always(applied: set[str]) -> bool:
    return True


@dataclass(frozen=True)
class PipelineVariant:
    """One way of converting a rule for a kind of table.

    ``wants`` is checked before conversion (cheap logsource test), ``selected`` after it, on the
    identifiers of the processing items that applied: a variant whose pipeline did not select
    any events for the rule does not apply to it."""

    name: str
    kind: TableKind
    build: Callable[[], ProcessingPipeline | None]
    wants: Callable[[SigmaRule], bool]
    selected: Callable[[set[str]], bool]


_WINDOWS_VARIANTS = (
    PipelineVariant(
        "sysmon",
        "windows",
        lambda: sysmon_pipeline() + windows_logsource_pipeline(),
        is_windows_rule,
        _selects_windows_events,
    ),
    PipelineVariant(
        "windows-audit",
        "windows",
        lambda: windows_audit_pipeline() + windows_logsource_pipeline(),
        _audit_category,
        _selects_audit_events,
    ),
)
_DEFENDER_VARIANTS = (
    PipelineVariant("microsoft-xdr", "defender", xdr_pipeline, lambda rule: True, _always),
)
_GENERIC_VARIANTS = (PipelineVariant("none", "generic", lambda: None, lambda rule: True, _always),)


def variants_for(kind: TableKind) -> tuple[PipelineVariant, ...]:
    if kind == "windows":
        return _WINDOWS_VARIANTS
    if kind == "defender":
        return _DEFENDER_VARIANTS
    return _GENERIC_VARIANTS


def rule_items(rule: SigmaRule) -> Iterator[SigmaDetectionItem]:
    """Every detection item of every detection of the rule, nested ones included."""
    for detection in rule.detection.detections.values():
        yield from _detection_items(detection)


def _detection_items(detection: SigmaDetection) -> Iterator[SigmaDetectionItem]:
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            yield from _detection_items(item)
        else:
            yield item


def referenced_fields(rule: SigmaRule) -> tuple[set[str], bool]:
    """The field names a rule's detections use, and whether it has keyword (field-less) items."""
    fields: set[str] = set()
    keywords = False
    for item in rule_items(rule):
        if item.field is None:
            keywords = True
        else:
            fields.add(item.field)
        fields.update(v.field for v in item.value if isinstance(v, SigmaFieldReference))
    return fields, keywords


def generic_applies(rule: SigmaRule, columns: Iterable[str]) -> bool:
    """A rule applies to a table without mapping when all its fields are columns."""
    fields, keywords = referenced_fields(rule)
    if not fields or keywords:
        return False
    folded = {c.casefold() for c in columns}
    return all(f.casefold() in folded for f in fields)


def placeholders(rule: SigmaRule) -> list[str]:
    """``%name%`` placeholders of ``|expand`` values, which every backend leaves unresolved."""
    names: set[str] = set()
    for item in rule_items(rule):
        for value in item.value:
            text = value.regexp if isinstance(value, SigmaRegularExpression) else value
            if isinstance(text, SigmaString):
                names.update(f"%{p.name}%" for p in text.s if isinstance(p, Placeholder))
    return sorted(names)
