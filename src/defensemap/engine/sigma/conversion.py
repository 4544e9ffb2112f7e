"""Rule sets converted to DuckDB SQL for the tables to be searched: detection rules per
table and pipeline variant (see :mod:`.pipelines`), correlation rules as window queries over
the matches of the rules they reference."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.exceptions import SigmaTransformationError
from sigma.rule import SigmaRule

from defensemap.engine.sigma.backend import DuckDBBackend, Schema
from defensemap.engine.sigma.pipelines import (
    XDR_NO_TABLE,
    PipelineVariant,
    defender_field,
    generic_applies,
    placeholders,
    table_kind,
    variants_for,
)
from defensemap.engine.sigma.ruleinfo import (
    RuleInfo,
    RuleProblem,
    RuleSet,
    RuleWarning,
    _reason,
    rule_key,
)
from defensemap.engine.sigma.sqltext import quote_identifier

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
    unresolved = placeholders(rule)
    if unresolved:
        result.problems.append(
            info.problem(
                f"unresolved placeholder {', '.join(unresolved)}: defensemap does not expand "
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
