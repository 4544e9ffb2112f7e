"""DuckDB SQL text for Sigma values: quoted identifiers and literals, RE2 checks, LIKE and
regular-expression patterns for wildcards, and CIDR ranges."""

from __future__ import annotations

import ipaddress
import threading

import duckdb
from sigma.exceptions import SigmaValueError
from sigma.types import Placeholder, SigmaCIDRExpression, SigmaString, SpecialChars

_IPV4_SHAPE = r"[0-9]{1,3}(\.[0-9]{1,3}){3}"


def quote_identifier(name: str) -> str:
    """A DuckDB identifier, double-quoted with embedded quotes doubled."""
    if "\x00" in name:
        raise SigmaValueError(f"field name {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A DuckDB string literal for any Python string (quotes doubled, NUL via ``chr(0)``)."""
    parts = ["'" + part.replace("'", "''") + "'" for part in value.split("\x00")]
    if len(parts) == 1:
        return parts[0]
    return "(" + " || chr(0) || ".join(parts) + ")"


class _RE2Check:
    """Compiles patterns with DuckDB's RE2 on a private in-memory connection (cached)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.con: duckdb.DuckDBPyConnection | None = None
        self.cache: dict[str, str | None] = {}

    def error(self, pattern: str) -> str | None:
        with self.lock:
            if pattern in self.cache:
                return self.cache[pattern]
            if self.con is None:
                self.con = duckdb.connect(":memory:")
            try:
                self.con.execute(f"SELECT regexp_matches('', {quote_literal(pattern)})").fetchall()
                error: str | None = None
            except duckdb.Error as exc:
                error = str(exc).split("\n", 1)[0]
            self.cache[pattern] = error
            return error


_RE2 = _RE2Check()


def re2_error(pattern: str) -> str | None:
    """Why DuckDB's RE2 cannot compile ``pattern``, or None when it can."""
    return _RE2.error(pattern)


def _like_pattern(value: SigmaString) -> str:
    """The SQL LIKE pattern (escape character ``\\``) for a Sigma string with wildcards."""
    out: list[str] = []
    for part in value.s:
        if isinstance(part, str):
            out.append(part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))
        elif part is SpecialChars.WILDCARD_MULTI:
            out.append("%")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append("_")
        elif isinstance(part, Placeholder):
            raise SigmaValueError(f"unresolved placeholder %{part.name}% in value")
        else:  # pragma: no cover - pySigma has no other part types
            raise SigmaValueError(f"unexpected part {part!r} in Sigma string")
    return "".join(out)


def _plain(value: SigmaString) -> str:
    """The text of a Sigma string without wildcards (placeholders refused)."""
    out: list[str] = []
    for part in value.s:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, Placeholder):
            raise SigmaValueError(f"unresolved placeholder %{part.name}% in value")
        else:  # pragma: no cover - callers check for wildcards first
            raise SigmaValueError("wildcard in a plain value")
    return "".join(out)


_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def _regex_literal(text: str) -> str:
    out = []
    for ch in text:
        if ch in _RE2_SPECIAL:
            out.append("\\" + ch)
        elif ch == "\x00":
            out.append("\\x00")
        else:
            out.append(ch)
    return "".join(out)


def _regex_for(value: SigmaString) -> str:
    """An RE2 pattern (search semantics) equivalent to matching the whole text against
    ``value`` with its wildcards; ``^``/``$`` only where the value is anchored."""
    parts = list(value.s)
    lead = bool(parts) and parts[0] is SpecialChars.WILDCARD_MULTI
    trail = len(parts) > int(lead) and parts[-1] is SpecialChars.WILDCARD_MULTI
    body = parts[int(lead) : len(parts) - int(trail)] if parts else []
    out = [] if lead else ["^"]
    for part in body:
        if isinstance(part, str):
            out.append(_regex_literal(part))
        elif part is SpecialChars.WILDCARD_MULTI:
            out.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append(".")
        else:
            raise SigmaValueError(f"unresolved placeholder in value {value}")
    if not trail:
        out.append("$")
    return "".join(out)


def string_match(column_sql: str, value: SigmaString, *, cased: bool) -> str:
    """SQL matching text column ``column_sql`` against a Sigma string (wildcards honoured)."""
    parts = value.s
    col = column_sql if cased else f"lower({column_sql})"

    def lit(text: str) -> str:
        return quote_literal(text) if cased else f"lower({quote_literal(text)})"

    inner = parts[1:-1] if len(parts) >= 2 else []
    starts_star = bool(parts) and parts[0] is SpecialChars.WILDCARD_MULTI
    ends_star = bool(parts) and parts[-1] is SpecialChars.WILDCARD_MULTI
    if not value.contains_special():
        return f"{col} = {lit(_plain(value))}"
    if len(parts) == 1 and starts_star:  # a lone '*': any value, but the field must be there
        return f"({column_sql} IS NOT NULL)"
    if len(parts) == 3 and starts_star and ends_star and isinstance(inner[0], str):
        return f"contains({col}, {lit(inner[0])})"
    if len(parts) == 2 and ends_star and isinstance(parts[0], str):
        return f"starts_with({col}, {lit(parts[0])})"
    if len(parts) == 2 and starts_star and isinstance(parts[1], str):
        return f"ends_with({col}, {lit(parts[1])})"
    return f"{col} LIKE {lit(_like_pattern(value))} ESCAPE '\\'"


def _ipv4_int(col: str) -> str:
    octets = (
        f"list_transform(string_split({col}, '.'), lambda dm_o: TRY_CAST(dm_o AS UTINYINT)::BIGINT)"
    )
    return f"list_reduce({octets}, lambda dm_a, dm_o: dm_a * 256 + dm_o)"


def _ipv6_int(col: str) -> str:
    """A UHUGEINT for an IPv6 address in text form (NULL if it is not one).

    DuckDB has no ``let``; ``list_transform([x], lambda v: ...)[1]`` binds ``x`` to ``v`` so
    the column is parsed once. The address is split at ``::``, the gap filled with zero
    groups, and the eight hextets folded into one 128-bit integer."""
    halves = f"string_split(lower(split_part({col}, '%', 1)), '::')"
    part = "(CASE WHEN dm_h[{i}] = '' THEN []::VARCHAR[] ELSE string_split(dm_h[{i}], ':') END)"
    expanded = (
        f"list_transform([{halves}], lambda dm_h: CASE "
        "WHEN len(dm_h) = 1 THEN string_split(dm_h[1], ':') "
        f"WHEN len(dm_h) = 2 THEN list_transform([[{part.format(i=1)}, {part.format(i=2)}]], "
        "lambda dm_p: dm_p[1] || list_transform(range(8 - len(dm_p[1]) - len(dm_p[2])), "
        "lambda dm_i: '0') || dm_p[2])[1] END)[1]"
    )
    hextet = (
        "CASE WHEN regexp_full_match(dm_g, '[0-9a-f]{1,4}') "
        "THEN TRY_CAST('0x' || dm_g AS UINTEGER)::UHUGEINT END"
    )
    return (
        f"list_transform([{expanded}], lambda dm_gs: CASE WHEN len(dm_gs) = 8 THEN "
        f"list_reduce(list_transform(dm_gs, lambda dm_g: {hextet}), "
        "lambda dm_a, dm_g: dm_a * 65536 + dm_g) END)[1]"
    )


def cidr_match(column_sql: str, cidr: SigmaCIDRExpression) -> str:
    network = cidr.network
    lo, hi = int(network.network_address), int(network.broadcast_address)
    if isinstance(network, ipaddress.IPv4Network):
        shape = f"regexp_full_match({column_sql}, {quote_literal(_IPV4_SHAPE)})"
        return f"({shape} AND {_ipv4_int(column_sql)} BETWEEN {lo} AND {hi})"
    shape = f"contains({column_sql}, ':')"
    return (
        f"({shape} AND {_ipv6_int(column_sql)} "
        f"BETWEEN CAST('{lo}' AS UHUGEINT) AND CAST('{hi}' AS UHUGEINT))"
    )
