"""A pySigma backend that turns Sigma detections into DuckDB SQL with Sigma's semantics.

Why our own backend (decision recorded here, measured in ``docs/pysigma-notes.md``):
``pysigma-backend-duckdb`` 0.1.4 compares plain values with a case-sensitive ``=`` (Sigma
matches case-insensitively unless ``|cased``), negates with a bare ``NOT (...)`` so a filter on a
field the event lacks drops the event, has no logsource handling, and installs outside pySigma's
``sigma.backends`` plugin discovery. ``pysigma-backend-sqlite`` has the NULL-safe negation but
needs pySigma >= 2, which the sysmon/windows pipelines and the kusto backend (whose Microsoft XDR
field mapping we reuse) do not accept. So this module builds on pySigma 1.5's
:class:`~sigma.conversion.base.TextQueryBackend` and emits DuckDB SQL itself.

Semantics, per Sigma value type:

* strings: case-insensitive (``lower(col) = lower('v')``, ``contains``/``starts_with``/
  ``ends_with`` on lowered text, ``LIKE ... ESCAPE '\\'`` for inner wildcards with ``%``, ``_``
  and ``\\`` in the value escaped); ``|cased`` drops the ``lower``. Escaped wildcards (``\\*``)
  stay literal because pySigma already parsed them into plain text.
* ``|re``: ``regexp_matches`` (RE2, unanchored search like Sigma); flags ``i``/``m``/``s`` become
  an inline ``(?ims)`` prefix. Patterns RE2 cannot compile (look-around, back-references) are
  refused at conversion time, so one rule cannot break a combined query.
* ``|cidr``: IPv4 by integer range on the parsed dotted quad; IPv6 by a 128-bit range on the
  parsed, ``::``-expanded address (``UHUGEINT``). Addresses in IPv4-embedded IPv6 notation
  (``::ffff:1.2.3.4``) do not match IPv6 ranges.
* numbers: ``=`` on numeric columns, text comparison otherwise; ``|lt`` ... ``|gte`` via
  ``TRY_CAST(... AS DOUBLE)``; ``null`` is ``IS NULL``; ``|exists`` is ``IS [NOT] NULL``;
  ``|fieldref`` compares two columns (case-insensitively, like any Sigma string match).
* keywords (field-less values): a case-insensitive substring search across every VARCHAR
  column of the target table (provenance columns excluded). Without a known schema they are
  refused with a clear error.
* ``NOT`` is ``NOT coalesce(expr, false)``: in SQL a comparison on a NULL (absent) field is
  NULL, and ``NOT NULL`` would drop the event; Sigma says the negated selection is true there.
* fields that are not columns of the target table become ``NULL`` (so the comparison is false,
  and its negation true) and are reported per rule in :attr:`DuckDBBackend.unknown_fields`.

``base64``/``base64offset``/``windash``/``wide``/``utf16*`` are value transformations pySigma's
modifiers perform before the backend sees the values (windash and base64offset arrive as
OR-linked expansions), so they need nothing here.

Values are always emitted as single-quoted SQL literals with quotes doubled (NUL characters as
``chr(0)``), and identifiers double-quoted with quotes doubled: rule content cannot inject SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.conversion.base import TextQueryBackend
from sigma.conversion.deferred import DeferredQueryExpression
from sigma.conversion.state import ConversionState
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import (
    SigmaConversionError,
    SigmaFeatureNotSupportedByBackendError,
    SigmaRegularExpressionError,
    SigmaValueError,
)
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from defensemap.engine.sigma.sqltext import (
    _plain,
    _regex_for,
    cidr_match,
    quote_identifier,
    quote_literal,
    re2_error,
    string_match,
)
from defensemap.logs.duck import PROVENANCE_COLUMNS

__all__ = [
    "QUERY_TABLE_STATE",
    "DuckDBBackend",
    "Schema",
    "quote_identifier",
    "quote_literal",
    "re2_error",
]

# A table's columns: exact name -> DuckDB type (as ``information_schema.columns`` reports it).
Schema = Mapping[str, str]

# The pipeline-state key through which pySigma pipelines (e.g. Microsoft XDR) choose a table.
QUERY_TABLE_STATE = "query_table"

_NUMERIC_TYPE = re.compile(
    r"(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT"
    r"|FLOAT|DOUBLE|REAL|DECIMAL|NUMERIC|INT\d*)(\(.*\))?\Z",
    re.IGNORECASE,
)
_TEXT_TYPES = frozenset({"VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR"})
_NULL = "CAST(NULL AS VARCHAR)"
_TIMESTAMP_PARTS: dict[TimestampPart, str] = {
    TimestampPart.MINUTE: "minute",
    TimestampPart.HOUR: "hour",
    TimestampPart.DAY: "day",
    TimestampPart.WEEK: "week",
    TimestampPart.MONTH: "month",
    TimestampPart.YEAR: "year",
}
_COMPARE_OPERATORS: dict[CompareOperators, str] = {
    CompareOperators.LT: "<",
    CompareOperators.LTE: "<=",
    CompareOperators.GT: ">",
    CompareOperators.GTE: ">=",
    CompareOperators.NEQ: "<>",
}


def _is_text(duck_type: str | None) -> bool:
    return duck_type is None or duck_type.upper() in _TEXT_TYPES


def _is_numeric(duck_type: str | None) -> bool:
    return duck_type is not None and bool(_NUMERIC_TYPE.match(duck_type.strip()))


# From this many OR-ed case-insensitive values on one field, one RE2 alternation is cheaper.
MERGE_MIN = 6

_OrLeaf = (
    tuple[str, SigmaString]
    | ConditionItem
    | ConditionFieldEqualsValueExpression
    | ConditionValueExpression
)


def _or_leaves(cond: ConditionOR) -> Iterator[_OrLeaf]:
    """The operands of an OR, nested ORs and value expansions flattened; plain (not cased)
    string matches as ``(field, value)``."""
    for arg in cond.args:
        if isinstance(arg, ConditionOR):
            yield from _or_leaves(arg)
        elif isinstance(arg, ConditionFieldEqualsValueExpression) and _mergeable_value(arg.value):
            assert isinstance(arg.value, SigmaString)
            yield arg.field, arg.value
        elif (
            isinstance(arg, ConditionFieldEqualsValueExpression)
            and isinstance(arg.value, SigmaExpansion)
            and all(_mergeable_value(v) for v in arg.value.values)
        ):
            for value in arg.value.values:
                assert isinstance(value, SigmaString)
                yield arg.field, value
        elif arg is not None:
            yield arg


def _mergeable_value(value: object) -> bool:
    return type(value) is SigmaString and not value.contains_placeholder()


class DuckDBBackend(TextQueryBackend):
    """Sigma rules to DuckDB SQL over one table (or the table a pipeline chooses).

    ``schemas`` maps table names to their columns (name -> DuckDB type). The target table of a
    rule is the pipeline state's ``query_table`` (set by e.g. the Microsoft XDR pipeline) or
    ``table``. A field the target table lacks becomes NULL and is listed in
    :attr:`unknown_fields` for the rule just converted. With no schema for the table, fields
    are used as written and keyword searches are refused.

    Output formats: ``default`` gives ``SELECT * FROM "<table>" WHERE <condition>``, ``where``
    the condition alone (what :mod:`defensemap.engine.sigma.run` combines per table).
    """

    name: ClassVar[str] = "defensemap DuckDB SQL"
    formats: ClassVar[dict[str, str]] = {
        "default": 'SELECT * FROM "<table>" WHERE <condition>',
        "where": "the WHERE condition only",
    }
    requires_pipeline: ClassVar[bool] = False

    precedence: ClassVar[tuple[type[ConditionItem], type[ConditionItem], type[ConditionItem]]] = (
        ConditionNOT,
        ConditionAND,
        ConditionOR,
    )
    parenthesize = True
    group_expression: ClassVar[str] = "({expr})"
    token_separator: str = " "
    or_token: ClassVar[str] = "OR"
    and_token: ClassVar[str] = "AND"
    not_token: ClassVar[str] = "NOT"
    eq_token: ClassVar[str] = " = "
    list_separator: ClassVar[str] = ", "
    field_in_list_expression: ClassVar[str] = "{field} {op} ({list})"
    or_in_operator: ClassVar[str] = "IN"
    convert_or_as_in: ClassVar[bool] = True
    convert_and_as_in: ClassVar[bool] = False
    in_expressions_allow_wildcards: ClassVar[bool] = False
    explicit_not_exists_expression: ClassVar[bool] = True
    empty_or_expression: ClassVar[str] = "false"
    empty_and_expression: ClassVar[str] = "true"

    def __init__(
        self,
        processing_pipeline: ProcessingPipeline | None = None,
        collect_errors: bool = False,
        *,
        table: str | None = None,
        schemas: Mapping[str, Schema] | None = None,
        **backend_options: Any,
    ) -> None:
        super().__init__(processing_pipeline, collect_errors, **backend_options)
        self.table = table
        self.schemas: dict[str, dict[str, str]] = {
            name: dict(columns) for name, columns in (schemas or {}).items()
        }
        self._folded: dict[str, dict[str, str]] = {
            name: {c.casefold(): c for c in columns} for name, columns in self.schemas.items()
        }
        self.unknown_fields: set[str] = set()
        self.target_table: str | None = None

    # -- rule entry point -------------------------------------------------------------------

    def convert_rule(
        self,
        rule: SigmaRule,
        output_format: str | None = None,
        callback: Any = None,
    ) -> list[Any]:
        """Convert one rule; afterwards :attr:`unknown_fields` and :attr:`target_table` say
        which fields the table lacked and which table the rule was converted for."""
        self.unknown_fields = set()
        self.target_table = None
        return super().convert_rule(rule, output_format, callback)

    # -- tables and columns -----------------------------------------------------------------

    def _table_for(self, state: ConversionState) -> str | None:
        chosen = state.processing_state.get(QUERY_TABLE_STATE)
        table = chosen if isinstance(chosen, str) and chosen else self.table
        self.target_table = table
        return table

    def _column(self, field: str, state: ConversionState) -> tuple[str, str | None]:
        """SQL for a field's column and its DuckDB type; NULL if the table lacks it."""
        table = self._table_for(state)
        if table is None or table not in self.schemas:
            return quote_identifier(field), None
        schema = self.schemas[table]
        actual = field if field in schema else self._folded[table].get(field.casefold())
        if actual is None:
            self.unknown_fields.add(field)
            return _NULL, "VARCHAR"
        return quote_identifier(actual), self.schemas[table][actual]

    def _text(self, field: str, state: ConversionState) -> str:
        """The field as text (non-text columns cast to VARCHAR)."""
        col, duck_type = self._column(field, state)
        if col == _NULL or (duck_type is not None and _is_text(duck_type)):
            return col
        return f"CAST({col} AS VARCHAR)"

    def _text_columns(self, state: ConversionState) -> list[str]:
        table = self._table_for(state)
        if table is None or table not in self.schemas:
            raise SigmaFeatureNotSupportedByBackendError(
                "keyword (field-less) search needs the target table's columns; "
                f"none are known for table {table!r}"
            )
        columns = [
            name
            for name, duck_type in self.schemas[table].items()
            if duck_type.upper() in _TEXT_TYPES and name not in PROVENANCE_COLUMNS
        ]
        return [quote_identifier(c) for c in columns]

    def escape_and_quote_field(self, field_name: str) -> str:
        return quote_identifier(field_name)

    # -- boolean structure ------------------------------------------------------------------

    def convert_condition_not(
        self, cond: ConditionNOT, state: ConversionState
    ) -> str | DeferredQueryExpression | None:
        """``NOT coalesce(expr, false)``: an absent field makes the inner part NULL, and the
        negation of "absent field has value X" must be true (Sigma), not NULL (SQL)."""
        arg = cond.args[0]
        if arg is None:
            return None
        expr = self.convert_condition(arg, state)
        if isinstance(expr, DeferredQueryExpression):
            return expr.negate()
        return f"NOT coalesce(({expr}), false)"

    def convert_condition_or(
        self, cond: ConditionOR, state: ConversionState
    ) -> str | DeferredQueryExpression | None:
        """OR; many case-insensitive string matches on one field become one RE2 alternation.

        ``CommandLine|contains: [a, b, ...]`` (and windash/base64offset expansions of it) would
        test every value separately; from :data:`MERGE_MIN` values on, one
        ``regexp_matches(lower(col), lower('(?s)a|b|...'))`` runs a single automaton over the
        text (measured: one RE2 call costs about five ``contains``/``ends_with`` calls). Both
        sides are lowered by DuckDB, exactly as in the one-value forms."""
        leaves = list(_or_leaves(cond))
        groups: dict[str, list[SigmaString]] = {}
        for leaf in leaves:
            if isinstance(leaf, tuple):
                groups.setdefault(leaf[0], []).append(leaf[1])
        merged = {f for f, values in groups.items() if len(values) >= MERGE_MIN}
        if not merged:
            return super().convert_condition_or(cond, state)
        parts: list[str] = []
        for leaf in leaves:
            if isinstance(leaf, tuple) and leaf[0] in merged:
                if leaf[0] in groups:
                    values = groups.pop(leaf[0])
                    pattern = "(?s)" + "|".join(_regex_for(v) for v in values)
                    col = self._text(leaf[0], state)
                    parts.append(f"regexp_matches(lower({col}), lower({quote_literal(pattern)}))")
                continue
            arg = (
                ConditionFieldEqualsValueExpression(leaf[0], leaf[1])
                if isinstance(leaf, tuple)
                else leaf
            )
            converted = (
                self.convert_condition(arg, state)
                if self.compare_precedence(cond, arg)
                else self.convert_condition_group(arg, state)
            )
            if converted is not None and not isinstance(converted, DeferredQueryExpression):
                parts.append(str(converted))
        return " OR ".join(parts) if parts else self.empty_or_expression

    def decide_convert_condition_as_in_expression(
        self, cond: ConditionOR | ConditionAND, state: ConversionState
    ) -> bool:
        if not isinstance(cond, ConditionOR) or len(cond.args) < 2:
            return False
        if not super().decide_convert_condition_as_in_expression(cond, state):
            return False
        return all(
            isinstance(arg, ConditionFieldEqualsValueExpression)
            and type(arg.value) is SigmaString
            and not arg.value.contains_special()
            and not arg.value.contains_placeholder()
            for arg in cond.args
        )

    def convert_condition_as_in_expression(
        self, cond: ConditionOR | ConditionAND, state: ConversionState
    ) -> str:
        """``lower(col) IN (lower('a'), lower('b'), ...)`` for OR-ed plain strings."""
        first = cond.args[0]
        assert isinstance(first, ConditionFieldEqualsValueExpression)
        col = self._text(first.field, state)
        values = []
        for arg in cond.args:
            assert isinstance(arg, ConditionFieldEqualsValueExpression)
            assert isinstance(arg.value, SigmaString)
            values.append(f"lower({quote_literal(_plain(arg.value))})")
        return f"lower({col}) IN ({', '.join(values)})"

    # -- field = value ----------------------------------------------------------------------

    def convert_condition_field_eq_val_str(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaString)
        return string_match(self._text(cond.field, state), cond.value, cased=False)

    def convert_condition_field_eq_val_str_case_sensitive(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaCasedString)
        return string_match(self._text(cond.field, state), cond.value, cased=True)

    def convert_condition_field_eq_val_num(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaNumber)
        col, duck_type = self._column(cond.field, state)
        if _is_numeric(duck_type):
            return f"{col} = {cond.value.number!r}"
        text = col if _is_text(duck_type) else f"CAST({col} AS VARCHAR)"
        return f"{text} = {quote_literal(str(cond.value))}"

    def convert_condition_field_eq_val_bool(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaBool)
        col, duck_type = self._column(cond.field, state)
        word = "true" if cond.value.boolean else "false"
        if duck_type is not None and duck_type.upper() == "BOOLEAN":
            return f"{col} = {word}"
        return f"lower({self._text(cond.field, state)}) = '{word}'"

    def convert_condition_field_eq_val_timestamp_part(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaTimestampPart)
        return f"{self._timestamp_part(cond.field, cond.value, state)} = {cond.value.number}"

    def _timestamp_part(self, field: str, value: SigmaTimestampPart, state: ConversionState) -> str:
        col, _ = self._column(field, state)
        part = _TIMESTAMP_PARTS[value.timestamp_part]
        return f"date_part('{part}', TRY_CAST({col} AS TIMESTAMP))"

    def convert_condition_field_eq_val_re(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaRegularExpression)
        return f"regexp_matches({self._text(cond.field, state)}, {self._regex(cond.value)})"

    def _regex(self, value: SigmaRegularExpression) -> str:
        if value.regexp.contains_placeholder():
            raise SigmaValueError("unresolved placeholder in regular expression")
        flags = "".join(
            sorted(
                SigmaRegularExpression.sigma_to_re_flag[f]
                for f in value.flags
                if f in SigmaRegularExpression.sigma_to_re_flag
            )
        )
        pattern = (f"(?{flags})" if flags else "") + value.regexp.to_plain_regex()
        error = re2_error(pattern)
        if error is not None:
            raise SigmaRegularExpressionError(
                f"regular expression {pattern!r} is not supported by DuckDB's RE2 engine ({error})"
            )
        return quote_literal(pattern)

    def convert_condition_field_eq_val_cidr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaCIDRExpression)
        return cidr_match(self._text(cond.field, state), cond.value)

    def convert_condition_field_compare_op_val(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaCompareExpression)
        op = _COMPARE_OPERATORS[cond.value.op]
        number = cond.value.number
        if isinstance(number, SigmaTimestampPart):
            return f"{self._timestamp_part(cond.field, number, state)} {op} {number.number}"
        col, duck_type = self._column(cond.field, state)
        left = col if _is_numeric(duck_type) else f"TRY_CAST({col} AS DOUBLE)"
        return f"{left} {op} {number.number!r}"

    def convert_condition_field_eq_field(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaFieldReference)
        left = f"lower({self._text(cond.field, state)})"
        right = f"lower({self._text(cond.value.field, state)})"
        if cond.value.starts_with and cond.value.ends_with:
            return f"contains({left}, {right})"
        if cond.value.starts_with:
            return f"starts_with({left}, {right})"
        if cond.value.ends_with:
            return f"ends_with({left}, {right})"
        return f"{left} = {right}"

    def convert_condition_field_eq_val_null(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        col, _ = self._column(cond.field, state)
        return f"({col} IS NULL)"

    def convert_condition_field_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        col, _ = self._column(cond.field, state)
        return f"({col} IS NOT NULL)"

    def convert_condition_field_not_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        col, _ = self._column(cond.field, state)
        return f"({col} IS NULL)"

    def convert_condition_field_eq_val_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaExists)
        if cond.value.exists:
            return self.convert_condition_field_exists(cond, state)
        return self.convert_condition_field_not_exists(cond, state)

    def convert_condition_field_eq_query_expr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        raise SigmaFeatureNotSupportedByBackendError(
            f"query expressions (from placeholders or pipelines) on field {cond.field!r} "
            "are not supported"
        )

    # -- keywords (no field) ----------------------------------------------------------------

    def _any_text_column(self, state: ConversionState, match: Any) -> str:
        columns = self._text_columns(state)
        if not columns:
            return "false"
        return "(" + " OR ".join(match(c) for c in columns) + ")"

    def convert_condition_val_str(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaString)
        value = cond.value
        # a keyword is a substring search: surround with '*' unless already there
        if not value.startswith(SpecialChars.WILDCARD_MULTI):
            value = SpecialChars.WILDCARD_MULTI + value
        if not value.endswith(SpecialChars.WILDCARD_MULTI):
            value = value + SpecialChars.WILDCARD_MULTI
        cased = isinstance(cond.value, SigmaCasedString)
        return self._any_text_column(state, lambda c: string_match(c, value, cased=cased))

    def convert_condition_val_num(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> str:
        text = SigmaString(str(cond.value))
        return self.convert_condition_val_str(ConditionValueExpression(text), state)

    def convert_condition_val_re(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaRegularExpression)
        pattern = self._regex(cond.value)
        return self._any_text_column(state, lambda c: f"regexp_matches({c}, {pattern})")

    def convert_condition_query_expr(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> str:
        raise SigmaFeatureNotSupportedByBackendError(
            "query expressions (from placeholders or pipelines) are not supported"
        )

    # -- finalization -----------------------------------------------------------------------

    def finalize_query_default(
        self, rule: SigmaRule | SigmaCorrelationRule, query: Any, index: int, state: ConversionState
    ) -> str:
        table = self._table_for(state)
        if table is None:
            raise SigmaConversionError(
                rule, rule.source, "no target table: pass table= or use a pipeline that sets one"
            )
        return f"SELECT * FROM {quote_identifier(table)} WHERE {query}"

    def finalize_query_where(
        self, rule: SigmaRule | SigmaCorrelationRule, query: Any, index: int, state: ConversionState
    ) -> str:
        self._table_for(state)
        return str(query)

    def finalize_output_default(self, queries: list[Any]) -> list[str]:
        return [str(q) for q in queries]

    def finalize_output_where(self, queries: list[Any]) -> list[str]:
        return [str(q) for q in queries]

    # -- correlation rules ------------------------------------------------------------------
    # Correlations are evaluated by defensemap.engine.sigma.rules/run over the base rules'
    # conditions, not through pySigma's text templates.
