"""Sigma → other SIEM languages with the installed pySigma backends, one pipeline choice per
backend and logsource, and an honest verdict on every result.

Every conversion says which backend and pipelines produced it and whether it is

``exact``
    every field the rule uses was mapped by the pipeline to the target's schema, or is a name
    the target's schema uses as is (Sysmon field names in Splunk's Windows add-ons, the native
    columns of a Sentinel table); a pipeline that refuses fields it does not know (Defender
    XDR, Azure Monitor, Google SecOps UDM, QRadar) vouches for every field it let through;
``approximate``
    converted, but some fields passed through unmapped, or no pipeline selects the rule's
    events on that target; the notes name them;
``refused``
    the backend or pipeline cannot express the rule (the reason is its one-line message), or
    the rule has ``|expand`` placeholders no backend resolves.

The verdict is read from pySigma's processing state (which field mappings and which
processing items applied), not from the query text. Pipelines mutate rules, so every
conversion parses a fresh rule from the dict.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Literal

from sigma.backends.elasticsearch.elasticsearch_esql import ESQLBackend
from sigma.backends.kusto.kusto import KustoBackend
from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression, ConditionOR
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaError
from sigma.plugins import InstalledSigmaPlugins
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline, QueryPostprocessingItem
from sigma.processing.postprocessing import QueryPostprocessingTransformation
from sigma.processing.transformations import FieldMappingTransformation, SetStateTransformation
from sigma.rule import SigmaRule
from sigma.types import SigmaCasedString, SigmaString

from defensemap.catalog import load_catalog
from defensemap.engine.sigma.pipelines import (
    is_windows_rule,
    placeholders,
    rule_items,
    sysmon_pipeline,
)
from defensemap.model.detection import Detection

Status = Literal["exact", "approximate", "refused"]
TARGETS: tuple[str, ...] = (
    "splunk",
    "elastic-esql",
    "elastic-lucene",
    "logscale",
    "secops",
    "qradar",
    "kusto",
)
# target -> pySigma backend plugin id
BACKENDS: dict[str, str] = {
    "splunk": "splunk",
    "elastic-esql": "esql",
    "elastic-lucene": "lucene",
    "logscale": "log_scale",
    "secops": "secops",
    "qradar": "qradar-aql-community",
    "kusto": "kusto",
}
LANGUAGES: dict[str, str] = {
    "splunk": "Splunk SPL",
    "elastic-esql": "Elasticsearch ES|QL",
    "elastic-lucene": "Elasticsearch Lucene",
    "logscale": "CrowdStrike LogScale (CQL)",
    "secops": "Google SecOps UDM search",
    "qradar": "IBM QRadar AQL",
    "kusto": "Microsoft Sentinel / Defender XDR KQL",
}

# Sentinel tables for cloud logsources (product, service) when the detection names none.
SERVICE_TABLES: dict[tuple[str, str | None], str] = {
    ("azure", "signinlogs"): "SigninLogs",
    ("azure", "auditlogs"): "AuditLogs",
    ("azure", "activitylogs"): "AzureActivity",
    ("azure", "riskdetection"): "AADUserRiskEvents",
    ("m365", None): "OfficeActivity",
    ("aws", "cloudtrail"): "AWSCloudTrail",
    ("gcp", "gcp.audit"): "GCPAuditLogs",
}
_XDR_NO_TABLE = "Unable to determine table name"
_PLACEHOLDER_HINT = "resolve the placeholders (an allow-list) before converting"
_MAX_REASON = 240


@dataclass(frozen=True)
class Conversion:
    """One rule in one target language, with what produced it and how faithful it is."""

    target: str
    backend: str
    pipelines: tuple[str, ...]
    query: str | None
    status: Status
    notes: tuple[str, ...] = ()

    @property
    def language(self) -> str:
        return LANGUAGES[self.target]

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "language": self.language,
            "backend": self.backend,
            "pipelines": list(self.pipelines),
            "status": self.status,
            "notes": list(self.notes),
            "query": self.query,
        }


@dataclass(frozen=True)
class _Plan:
    """How one target converts one rule.

    ``pipelines`` are plugin names (or our own, described in the docs); ``validating`` says
    the pipeline fails on fields it does not know, so success vouches for every field;
    ``native`` are field names the target takes unmapped (``None``: all of them);
    ``passthrough`` are prefixes under which a pipeline parks fields it could not map;
    ``selects`` tells from the applied processing item ids whether the pipeline selected the
    rule's events at all."""

    pipelines: tuple[str, ...]
    build: Callable[[], ProcessingPipeline | None]
    validating: bool = False
    native: frozenset[str] | None = frozenset()
    passthrough: tuple[str, ...] = ()
    selects: Callable[[set[str], dict[str, Any]], bool] = lambda ids, state: True


class _KustoBackend(KustoBackend):
    """The kusto backend with KQL identifier quoting: ``DeviceDetail.deviceId`` stays a path
    into a dynamic column and other odd names become ``['name']`` (the stock backend quotes
    them with ``'``, which KQL reads as a string literal)."""

    _PATH: ClassVar[re.Pattern[str]] = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

    def escape_and_quote_field(self, field_name: str) -> str:
        if self._PATH.match(field_name):
            return field_name
        return "['" + field_name.replace("'", "\\'") + "']"


def _has_letters(value: object) -> bool:
    """A string value whose match depends on letter case (numbers, IPs, ports do not)."""
    return isinstance(value, SigmaString) and any(c.isalpha() for c in str(value))


class _EsqlBackend(ESQLBackend):
    """The ES|QL backend matching text regardless of case, as Sigma does. ES|QL's ``==``,
    ``in``, ``like``, ``starts_with`` and ``ends_with`` compare case-sensitively (Elastic's
    ES|QL reference on LIKE), so the stock output's ``like "*MiniDump*"`` misses
    ``minidump``. Where a value has letters, the field is compared through ``to_lower`` and
    the value is lower-cased; numbers, IPs and ports keep the stock form (``to_lower`` takes
    only text). The stock backend refuses ``|cased`` values; regexes are left as written."""

    LOWERED: ClassVar[dict[str, str]] = {
        "eq_expression": "to_lower({field}){backend.eq_token}{value}",
        "startswith_expression": "starts_with(to_lower({field}), {value})",
        "endswith_expression": "ends_with(to_lower({field}), {value})",
        "wildcard_match_expression": "to_lower({field}) like {value}",
        "field_in_list_expression": "to_lower({field}) {op} ({list})",
    }

    def convert_value_str(self, s: SigmaString, state: ConversionState) -> str:
        converted: str = super().convert_value_str(s.lower(), state)
        return converted

    def convert_condition_field_eq_val_str(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        if not _has_letters(cond.value):
            return super().convert_condition_field_eq_val_str(cond, state)
        with self._lowered_templates():
            return super().convert_condition_field_eq_val_str(cond, state)

    def convert_condition_as_in_expression(
        self, cond: ConditionOR | ConditionAND, state: ConversionState
    ) -> Any:
        if not any(_has_letters(getattr(a, "value", None)) for a in cond.args):
            return super().convert_condition_as_in_expression(cond, state)
        with self._lowered_templates():
            return super().convert_condition_as_in_expression(cond, state)

    def decide_convert_condition_as_in_expression(
        self, cond: ConditionOR | ConditionAND, state: ConversionState
    ) -> bool:
        """A list holding a ``|cased`` value goes item by item, where it is refused, rather
        than into an ``in`` list that would lower-case it."""
        if any(isinstance(getattr(a, "value", None), SigmaCasedString) for a in cond.args):
            return False
        decided: bool = super().decide_convert_condition_as_in_expression(cond, state)
        return decided

    @contextmanager
    def _lowered_templates(self) -> Iterator[None]:
        """The stock conversion with the ``to_lower`` templates (instance attributes shadow
        the class's for the one call)."""
        for name, template in self.LOWERED.items():
            setattr(self, name, template)
        try:
            yield
        finally:
            for name in self.LOWERED:
                delattr(self, name)


@cache
def _plugins() -> InstalledSigmaPlugins:
    """The installed backends and pipelines (discovery is slow: once per process)."""
    return InstalledSigmaPlugins.autodiscover()


def _pipeline(*names: str) -> ProcessingPipeline:
    """Fresh instances of the named pipelines, concatenated in order."""
    plugins = _plugins()
    built = [sysmon_pipeline() if name == "sysmon" else plugins.pipelines[name]() for name in names]
    combined: ProcessingPipeline = built[0]
    for extra in built[1:]:
        combined = combined + extra
    return combined


# -- rule facts ---------------------------------------------------------------------------------


def rule_fields(rule: SigmaRule) -> list[str]:
    """Field names the rule's detections use, in first-use order."""
    seen: dict[str, None] = {}
    for item in rule_items(rule):
        if item.field is not None:
            seen.setdefault(item.field)
    return list(seen)


def case_sensitive_fields(rule: SigmaRule, mapped: dict[str, set[str]]) -> list[str]:
    """Target fields a Lucene query compares text on letter for letter: every field a rule
    matches a string with letters on, as the pipeline renamed it, except ``.caseless``
    fields (Elasticsearch normalises the query term for those). Regular expressions are
    the rule's own business: Sigma's are case-sensitive too."""
    found: set[str] = set()
    for item in rule_items(rule):
        if item.field is None or not any(_has_letters(v) for v in item.value):
            continue
        found |= {t for t in mapped.get(item.field) or {item.field} if not t.endswith(".caseless")}
    return sorted(found)


def _logsource(rule: SigmaRule) -> str:
    source = rule.logsource
    parts = [
        f"{key}={value}"
        for key, value in (
            ("product", source.product),
            ("category", source.category),
            ("service", source.service),
        )
        if value
    ]
    return " ".join(parts) or "none"


# -- plans per target ---------------------------------------------------------------------------


def _selects_windows_events(ids: set[str], state: dict[str, Any]) -> bool:
    return any(i.startswith(("sysmon_", "windows_logsource_")) for i in ids)


def _selects_falcon_events(ids: set[str], state: dict[str, Any]) -> bool:
    return any(i.startswith("cql_") and i.endswith("_eventtype") for i in ids)


def _selects_udm_events(ids: set[str], state: dict[str, Any]) -> bool:
    return "secops_set_event_type_from_logsource" in ids


def _named(*names: str) -> Callable[[], ProcessingPipeline]:
    return lambda: _pipeline(*names)


def _plan_splunk(rule: SigmaRule, tables: Sequence[str]) -> _Plan:
    if is_windows_rule(rule):
        return _Plan(
            ("sysmon", "splunk_windows"),
            _named("sysmon", "splunk_windows"),
            native=None,
            selects=_selects_windows_events,
        )
    return _Plan((), lambda: None)


def _plan_elastic(rule: SigmaRule, tables: Sequence[str]) -> _Plan:
    if is_windows_rule(rule):
        return _Plan(("ecs_windows",), _named("ecs_windows"), passthrough=("winlog.event_data.",))
    return _Plan((), lambda: None)


def _plan_logscale(rule: SigmaRule, tables: Sequence[str]) -> _Plan:
    return _Plan(
        ("crowdstrike_falcon",),
        _named("crowdstrike_falcon"),
        native=frozenset({"CommandLine"}),
        selects=_selects_falcon_events,
    )


def _plan_secops(rule: SigmaRule, tables: Sequence[str]) -> _Plan:
    return _Plan(
        ("secops_udm",), _named("secops_udm"), validating=True, selects=_selects_udm_events
    )


def _plan_qradar(rule: SigmaRule, tables: Sequence[str]) -> _Plan:
    return _Plan(("qradar-aql-fields",), _named("qradar-aql-fields"), validating=True)


def _has_table(ids: set[str], state: dict[str, Any]) -> bool:
    return bool(state.get("query_table"))


def _plan_kusto(rule: SigmaRule, tables: Sequence[str]) -> _Plan:
    if is_windows_rule(rule):
        defender = any(t.startswith("Device") for t in tables)
        if "SecurityEvent" in tables and not defender:
            return _Plan(
                ("azure_monitor",), _named("azure_monitor"), validating=True, selects=_has_table
            )
        return _Plan(
            ("microsoft_xdr",), _named("microsoft_xdr"), validating=True, selects=_has_table
        )
    table = sentinel_table(rule, tables)
    if table is None:
        return _Plan(("defensemap_sentinel_table",), lambda: None, selects=_has_table)
    return _Plan(
        (f"defensemap_sentinel_table({table})",),
        lambda: _table_pipeline(rule, table),
        selects=_has_table,
    )


_PLANNERS: dict[str, Callable[[SigmaRule, Sequence[str]], _Plan]] = {
    "splunk": _plan_splunk,
    "elastic-esql": _plan_elastic,
    "elastic-lucene": _plan_elastic,
    "logscale": _plan_logscale,
    "secops": _plan_secops,
    "qradar": _plan_qradar,
    "kusto": _plan_kusto,
}


# -- Sentinel tables for cloud rules ------------------------------------------------------------


def _columns_of(table: str, fields: Sequence[str]) -> dict[str, str]:
    """Rule fields whose first path segment is a column of ``table`` -> canonical spelling."""
    schema = load_catalog().table(table)
    found: dict[str, str] = {}
    if schema is None:
        return found
    for name in fields:
        root, dot, rest = name.partition(".")
        column = schema.column(root)
        if column is not None:
            found[name] = column.name + dot + rest
    return found


def sentinel_table(rule: SigmaRule, tables: Sequence[str]) -> str | None:
    """The Sentinel table a non-Windows rule runs on: the one of the detection's tables that
    has every field of the rule as a column (most fields if none has all), else the table
    known for the rule's product and service."""
    fields = rule_fields(rule)
    scored = [(len(_columns_of(t, fields)), -i, t) for i, t in enumerate(tables)]
    scored = [s for s in scored if s[0] > 0 or not fields]
    if scored:
        return max(scored)[2]
    product = (rule.logsource.product or "").casefold()
    service = (rule.logsource.service or "").casefold() or None
    return SERVICE_TABLES.get((product, service)) or SERVICE_TABLES.get((product, None))


@dataclass
class _PrependTable(QueryPostprocessingTransformation):
    """``<table>\n| where <condition>``: a KQL query needs its table first."""

    table: str

    def apply(self, rule: Any, query: Any) -> str:
        return f"{self.table}\n| where {query}"


def _table_pipeline(rule: SigmaRule, table: str) -> ProcessingPipeline:
    """Our pipeline for a Sentinel table: fields that are its columns get the column's exact
    spelling (KQL names are case-sensitive), the query starts with the table."""
    columns: dict[str | None, str | list[str]] = dict(_columns_of(table, rule_fields(rule)).items())
    return ProcessingPipeline(
        name=f"defensemap Sentinel table {table}",
        priority=10,
        items=[
            ProcessingItem(
                identifier="defensemap_sentinel_query_table",
                transformation=SetStateTransformation("query_table", table),
            ),
            ProcessingItem(
                identifier="defensemap_sentinel_columns",
                transformation=FieldMappingTransformation(columns),
            ),
        ],
        postprocessing_items=[
            QueryPostprocessingItem(
                identifier="defensemap_sentinel_prepend_table",
                transformation=_PrependTable(table),
            )
        ],
    )


# -- conversion ---------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    """The exception's first line, without pySigma's location suffix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"\s*\(while (applying|converting)[^)]*\)\s*$", "", text).strip()
    if not isinstance(exc, SigmaError):
        text = f"{type(exc).__name__}: {text}"
    if text.startswith(_XDR_NO_TABLE):
        text = "no Defender XDR / Azure Monitor table for this logsource"
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _backend(target: str, pipeline: ProcessingPipeline | None) -> Any:
    own: dict[str, Any] = {"kusto": _KustoBackend, "elastic-esql": _EsqlBackend}
    backend: Any = own.get(target) or _plugins().backends[BACKENDS[target]]
    return backend(processing_pipeline=pipeline)


def _parse(sigma: dict[str, Any]) -> SigmaRule:
    return SigmaRule.from_dict(copy.deepcopy(sigma))


def _unmapped(plan: _Plan, fields: list[str], mapped: dict[str, set[str]]) -> list[str]:
    """Fields neither native to the target nor mapped to it (parking a field under a
    pass-through prefix such as ``winlog.event_data.`` is not a mapping)."""
    if plan.native is None or plan.validating:
        return []
    return [
        name
        for name in fields
        if name not in plan.native
        and not any(not t.startswith(plan.passthrough) for t in mapped.get(name, ()))
    ]


def _verdict(
    plan: _Plan, rule: SigmaRule, mapped: dict[str, set[str]], ids: set[str], state: dict[str, Any]
) -> tuple[Status, tuple[str, ...]]:
    """Exact or approximate, from the processing state of a successful conversion;
    ``rule`` is the unprocessed rule."""
    source = _logsource(rule)
    fields = rule_fields(rule)
    if not plan.pipelines:
        unmapped = ", ".join(fields) or "none"
        return "approximate", (
            f"no pipeline for logsource {source}: fields passed through unmapped: {unmapped}"
            " — map them to your index",
        )
    notes: list[str] = []
    if not plan.selects(ids, state):
        notes.append(
            f"{'+'.join(plan.pipelines)} selects no events for logsource {source}"
            " — add your own index/source condition"
        )
    passed = _unmapped(plan, fields, mapped)
    if passed:
        notes.append(
            f"fields passed through unmapped: {', '.join(passed)} — map them to your index"
        )
    return ("approximate" if notes else "exact"), tuple(notes)


def convert(sigma: dict[str, Any], target: str, *, tables: Sequence[str] = ()) -> Conversion:
    """One Sigma rule (as a dict) in ``target``'s language; ``tables`` are the Sentinel
    tables the rule is meant for (a detection's ``required_tables``), used to pick the table
    of cloud rules for ``kusto``. Never raises for a rule a backend cannot handle."""
    backend_name = BACKENDS[target]
    try:
        rule = _parse(sigma)
    except Exception as exc:
        return Conversion(target, backend_name, (), None, "refused", (_reason(exc),))
    plan = _PLANNERS[target](rule, tables)
    found = placeholders(rule)
    if found:
        reason = f"unresolved placeholders {', '.join(found)} — {_PLACEHOLDER_HINT}"
        return Conversion(target, backend_name, plan.pipelines, None, "refused", (reason,))
    try:
        pipeline = plan.build()
        if plan.pipelines and pipeline is None:
            raise SigmaError(f"no Sentinel table known for logsource {_logsource(rule)}")
        backend = _backend(target, pipeline)
        queries = backend.convert_rule(rule)
    except Exception as exc:
        return Conversion(target, backend_name, plan.pipelines, None, "refused", (_reason(exc),))
    if not queries:
        return Conversion(
            target, backend_name, plan.pipelines, None, "refused", ("the backend emitted no query",)
        )
    processed = backend.last_processing_pipeline
    processed_mappings = {k: set(v) for k, v in processed.field_mappings.items()}
    unprocessed = _parse(sigma)  # the conversion rewrote ``rule`` in place
    status, notes = _verdict(
        plan,
        unprocessed,
        processed_mappings,
        set(processed.applied_ids),
        dict(processed.state),
    )
    if target == "elastic-lucene":
        literal = case_sensitive_fields(unprocessed, processed_mappings)
        if literal:
            status = "approximate"
            notes = (*notes, _LUCENE_CASE_NOTE.format(fields=", ".join(literal)))
    query = "\n".join(str(q) for q in queries)
    return Conversion(target, backend_name, plan.pipelines, query, status, notes)


_LUCENE_CASE_NOTE = (
    "Lucene compares {fields} letter for letter, Sigma regardless of case: values match only"
    " as written — use the ES|QL conversion, or .caseless fields where your index has them"
)
PARTIAL_NOTE = (
    "the Sigma rule is the single-source part of the KQL detection (sigma_scope: partial)"
)


def scoped(result: Conversion, sigma_scope: str) -> Conversion:
    """A conversion of Sigma that is only the portable part of a detection's KQL
    (``sigma_scope: partial``) is at best approximate for the detection."""
    if sigma_scope != "partial" or result.status == "refused":
        return result
    return Conversion(
        result.target,
        result.backend,
        result.pipelines,
        result.query,
        "approximate",
        (*result.notes, PARTIAL_NOTE),
    )


def convert_detection(detection: Detection, target: str) -> Conversion:
    """A library detection's Sigma rule in ``target``, its tables guiding ``kusto``."""
    if detection.sigma is None:
        return Conversion(
            target, BACKENDS[target], (), None, "refused", ("the detection has no Sigma rule",)
        )
    result = convert(detection.sigma, target, tables=detection.required_tables)
    return scoped(result, detection.sigma_scope)


@dataclass(frozen=True)
class SupportRow:
    """One cell of the support matrix: a detection on one target."""

    detection_id: str
    title: str
    target: str
    status: Status
    notes: tuple[str, ...]
    backend: str
    pipelines: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "detection_id": self.detection_id,
            "title": self.title,
            "target": self.target,
            "status": self.status,
            "notes": list(self.notes),
            "backend": self.backend,
            "pipelines": list(self.pipelines),
        }


def support_matrix(
    detections: Sequence[Detection], targets: Sequence[str] = TARGETS
) -> list[SupportRow]:
    """Detection × target: exact, approximate (how) or refused (why), in input order."""
    rows = []
    for detection in detections:
        for target in targets:
            result = convert_detection(detection, target)
            rows.append(
                SupportRow(
                    str(detection.id),
                    detection.title,
                    target,
                    result.status,
                    result.notes,
                    result.backend,
                    result.pipelines,
                )
            )
    return rows
