"""KQL through duckdb-kql: offline checking against the catalog, and confined execution.

Two entry points:

* :func:`check_kql` answers "would this Sentinel/Defender query run?" with no workspace:
  it parses the query, refuses anything unsafe, translates it with duckdb-kql, resolves its
  tables against the catalog and runs the SQL on *empty typed tables* in a throw-away,
  locked-down in-memory DuckDB so that column and type errors surface. It never raises
  for a bad query; it returns the problems.
* :func:`run_kql` runs a query on the live logs connection (already locked down by
  :func:`defensemap.engine.duck.lock_down`) under a timeout, and raises :class:`KqlError`
  for the same problems before anything runs.

Refusals, from the outside in: KQL constructs that read files or call out (``externaldata``,
``external_table()``, ``evaluate http_request`` / ``python`` / …, control commands that
write or attach) are refused from the query text; the generated SQL must be one ``SELECT``
that reads only known tables and a short list of generator table functions (checked on
DuckDB's own parse tree, ``json_serialize_sql``); and the connection itself has external
access disabled and its configuration locked. Where duckdb-kql lacks an operator or a
function, the problem names it with its line and column — never a wrong answer.

Lines and columns are 1-based, as an editor shows them (duckdb-kql's spans are 0-based
columns and are converted).

KQL names are case-sensitive and DuckDB's are not: DuckDB would bind ``devicename`` to
``DeviceName``, and ``deviceprocessevents`` to the table. Kusto rejects both, so tables are
matched exactly here, and a column spelled with the wrong case is reported as unknown.

Known gaps (duckdb-kql 1.1.2 and DuckDB): ``project-rename x = Missing`` binds without an
error, so that one unknown column goes unreported; and of two catalog columns differing only
in case (AzureDiagnostics ``clientIP_s``/``clientIp_s``) only the first exists here.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from defensemap.catalog import Catalog, duckdb_type, load_catalog
from defensemap.engine.duck import QueryTimeoutError, connect, lock_down
from defensemap.engine.duck import with_timeout as _with_timeout
from defensemap.engine.kql_functions import BUILTINS, INVOKE_PRELUDES, STORED_FUNCTIONS
from defensemap.errors import DefensemapError, InputError, SourceLocation

if TYPE_CHECKING:
    from duckdb_kql.stored_functions import ResolvedFunctions

__all__ = [
    "KqlCheck",
    "KqlError",
    "KqlParseError",
    "KqlProblem",
    "KqlResourceError",
    "KqlResult",
    "KqlTypeError",
    "KqlUnknownColumnError",
    "KqlUnknownTableError",
    "KqlUnsafeError",
    "KqlUnsupportedError",
    "ProblemKind",
    "QueryTimeoutError",
    "check_kql",
    "format_check",
    "run_kql",
]

ProblemKind = Literal[
    "parse_error",
    "unsupported_feature",
    "unknown_table",
    "unknown_column",
    "unsafe",
    "type_error",
]

#: How long `check_kql` lets the SQL run on empty tables. Binding is what is checked; a
#: query that is still busy after this (a large `range`) bound fine and counts as ok.
CHECK_TIMEOUT = 10.0
CHECK_MEMORY_LIMIT = "512MB"


# --------------------------------------------------------------------------------------
# Results and errors
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KqlProblem:
    """One reason a query cannot run: what kind, which construct, where, and why.

    ``kind`` is one of ``parse_error``, ``unsupported_feature``, ``unknown_table``,
    ``unknown_column``, ``unsafe`` and ``type_error`` (DuckDB refused the translated SQL
    for a reason other than a missing table or column, such as comparing a datetime with a
    number). ``line``/``column`` are 1-based, or None when the construct cannot be
    located in the text.
    """

    kind: ProblemKind
    construct: str
    line: int | None
    column: int | None
    message: str

    @property
    def header(self) -> str:
        """``<kind>: <construct> at line L, column C`` (the position only when known)."""
        text = f"{self.kind}: {self.construct}"
        if self.line is not None:
            text += f" at line {self.line}"
            if self.column is not None:
                text += f", column {self.column}"
        return text

    def __str__(self) -> str:
        return f"{self.header} — {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "construct": self.construct,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


@dataclass(frozen=True)
class KqlCheck:
    """What :func:`check_kql` found. ``tables`` are the tables the query reads (also
    through provided built-in functions), ``sql`` the DuckDB translation when one was
    made."""

    ok: bool
    problems: list[KqlProblem]
    tables: list[str] = field(default_factory=list)
    sql: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "problems": [p.to_dict() for p in self.problems],
            "tables": list(self.tables),
            "sql": self.sql,
        }


class KqlError(InputError):
    """A KQL query that cannot run, carrying the :class:`KqlProblem` as ``problem``.

    ``str()`` is ``<kind>: <construct> at line L, column C — message``; ``code`` is the
    problem's kind. :meth:`from_problem` picks the subclass for the kind.
    """

    code = "kql_error"

    def __init__(self, problem: KqlProblem, *, path: str | None = None) -> None:
        location = SourceLocation(path=path, line=problem.line, column=problem.column)
        super().__init__(problem.message, location=location)
        self.problem = problem
        self.code = problem.kind

    def __str__(self) -> str:
        return str(self.problem)

    @staticmethod
    def from_problem(problem: KqlProblem, *, path: str | None = None) -> KqlError:
        return _ERROR_CLASSES[problem.kind](problem, path=path)


class KqlParseError(KqlError):
    """The query does not parse."""


class KqlUnsupportedError(KqlError):
    """Valid KQL that cannot be run here: duckdb-kql lacks it, or it needs cloud data."""


class KqlUnknownTableError(KqlError):
    """The query reads a table that is not in the catalog (or not loaded)."""


class KqlUnknownColumnError(KqlError):
    """The query uses a column that its input does not have."""


class KqlUnsafeError(KqlError):
    """The query would read files, call out or write; refused."""


class KqlTypeError(KqlError):
    """DuckDB refused the translated query for a type reason."""


_ERROR_CLASSES: dict[str, type[KqlError]] = {
    "parse_error": KqlParseError,
    "unsupported_feature": KqlUnsupportedError,
    "unknown_table": KqlUnknownTableError,
    "unknown_column": KqlUnknownColumnError,
    "unsafe": KqlUnsafeError,
    "type_error": KqlTypeError,
}


class KqlResourceError(DefensemapError):
    """A query ran out of its memory budget."""

    code = "memory_limit"


@dataclass(frozen=True)
class KqlResult:
    """Rows of a query run by :func:`run_kql`, with their column names and the SQL."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    sql: str
    truncated: bool = False


def format_check(check: KqlCheck) -> str:
    """The text ``defensemap kql check`` prints: ``ok``, or for each problem a line
    ``<kind>: <construct> at line L, column C`` followed by a line with the message."""
    if check.ok:
        return "ok"
    lines: list[str] = []
    for problem in check.problems:
        lines.append(problem.header)
        lines.append(problem.message)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# A small KQL lexer: enough to find names outside strings and comments, with positions
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: Literal["ident", "string", "number", "punct"]
    text: str
    line: int
    column: int  # 1-based
    offset: int


_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[A-Za-z]*")
_PUNCT = ("==", "!=", "=~", "!~", "<=", ">=", "..", "=>", "<|", "<>")
_WORD_AT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z_][A-Za-z0-9_]*)*")


def _tokens(text: str) -> list[_Token]:
    """Tokens of ``text``; comments and whitespace dropped, strings kept whole. Never
    fails: an unterminated string runs to the end of its line (the parser reports it)."""
    out: list[_Token] = []
    i, n, line, line_start = 0, len(text), 1, 0

    def advance_to(j: int) -> None:
        nonlocal i, line, line_start
        newlines = text.count("\n", i, j)
        if newlines:
            line += newlines
            line_start = text.rfind("\n", i, j) + 1
        i = j

    while i < n:
        ch = text[i]
        if ch == "\n" or ch.isspace():
            advance_to(i + 1)
            continue
        if text.startswith("//", i):
            newline = text.find("\n", i)
            advance_to(n if newline < 0 else newline)
            continue
        start, start_line, start_col = i, line, i - line_start + 1
        end = _string_end(text, i)
        if end is not None:
            out.append(_Token("string", text[start:end], start_line, start_col, start))
            advance_to(end)
            continue
        match = _IDENT.match(text, i)
        if match:
            out.append(_Token("ident", match.group(), start_line, start_col, start))
            advance_to(match.end())
            continue
        match = _NUMBER.match(text, i)
        if match:
            out.append(_Token("number", match.group(), start_line, start_col, start))
            advance_to(match.end())
            continue
        two = text[i : i + 2]
        width = 2 if two in _PUNCT else 1
        out.append(_Token("punct", text[i : i + width], start_line, start_col, start))
        advance_to(i + width)
    return out


def _string_end(text: str, i: int) -> int | None:
    """If a string literal starts at ``i``, the offset just past it."""
    for fence in ("```", "~~~"):
        if text.startswith(fence, i):
            end = text.find(fence, i + 3)
            return len(text) if end < 0 else end + 3
    j = i
    if text[j] in "hH" and j + 1 < len(text) and text[j + 1] in "@'\"":
        j += 1
    verbatim = False
    if text[j] == "@" and j + 1 < len(text) and text[j + 1] in "'\"":
        verbatim = True
        j += 1
    if text[j] not in "'\"":
        return None
    quote = text[j]
    j += 1
    while j < len(text):
        c = text[j]
        if c == "\n":
            return j
        if not verbatim and c == "\\":
            j += 2
            continue
        if c == quote:
            if verbatim and j + 1 < len(text) and text[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return len(text)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _next_is(tokens: Sequence[_Token], index: int, text: str) -> bool:
    return index + 1 < len(tokens) and tokens[index + 1].text == text


def _prev_is(tokens: Sequence[_Token], index: int, text: str) -> bool:
    return index > 0 and tokens[index - 1].text == text


def _word_at(text: str, line: int, column0: int) -> str | None:
    """The (possibly hyphenated) word at a 1-based line and 0-based column."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    match = _WORD_AT.match(lines[line - 1], column0)
    return match.group() if match else None


def _find_ident(tokens: Sequence[_Token], name: str, *, call: bool | None = None) -> _Token | None:
    """The first identifier token spelled ``name`` (exactly, else case-insensitively);
    with ``call`` set, only those followed (or not) by ``(``."""
    for exact in (True, False):
        for index, token in enumerate(tokens):
            if token.kind != "ident":
                continue
            same = token.text == name if exact else token.text.casefold() == name.casefold()
            if not same:
                continue
            if call is not None and _next_is(tokens, index, "(") != call:
                continue
            return token
    return None


# --------------------------------------------------------------------------------------
# What is refused from the query text
# --------------------------------------------------------------------------------------

#: `evaluate` plugins that reach outside the process: network, other databases, code.
UNSAFE_PLUGINS = frozenset(
    {
        "http_request",
        "http_request_post",
        "sql_request",
        "mysql_request",
        "postgresql_request",
        "cosmosdb_sql_request",
        "azure_digital_twins_query_request",
        "ai_chat_completion",
        "ai_chat_completion_prompt",
        "ai_embeddings",
        "ai_embed_text",
        "python",
        "r",
    }
)

#: Functions that name data outside the local logs: other clusters, workspaces, apps.
_REMOTE_SOURCES = frozenset({"cluster", "workspace", "app", "adx", "arg", "resource"})

_WRITE_COMMANDS = re.compile(
    r"\.(?:set|append|set-or-append|set-or-replace|ingest|create|create-or-alter|create-merge|"
    r"alter|alter-merge|attach|detach|drop|delete|purge|replace|move|rename|add|export)\b",
    re.IGNORECASE,
)


def _strip_leading_comments(text: str) -> str:
    lines = text.split("\n")
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("//")):
        lines.pop(0)
    return "\n".join(lines)


def _static_problems(text: str, tokens: Sequence[_Token]) -> list[KqlProblem]:
    """Problems visible in the text alone: unsafe constructs, control commands, refused
    Defender/Sentinel built-ins and remote sources. Checked before parsing, so that a
    refusal names the construct even where the parser or translator would say less."""
    problems: list[KqlProblem] = []
    head = _strip_leading_comments(text).lstrip()
    if head.startswith("."):
        first = next((t for t in tokens if t.text == "."), None)
        line = first.line if first else 1
        column = first.column if first else 1
        command = "." + (head[1:].split(None, 1) or [""])[0]
        if _WRITE_COMMANDS.match(head):
            problems.append(
                KqlProblem(
                    "unsafe",
                    command,
                    line,
                    column,
                    f"control command {command} writes, ingests or attaches data; "
                    "only queries are run here",
                )
            )
        else:
            problems.append(
                KqlProblem(
                    "unsupported_feature",
                    command,
                    line,
                    column,
                    f"control command {command} is not a query; a detection or hunting "
                    "query must be a KQL query",
                )
            )
        return problems

    for index, token in enumerate(tokens):
        if token.kind != "ident":
            continue
        name = token.text
        calls = _next_is(tokens, index, "(")
        after_dot = _prev_is(tokens, index, ".")
        if name in ("externaldata", "external_data") and not after_dot:
            problems.append(
                KqlProblem(
                    "unsafe",
                    name,
                    token.line,
                    token.column,
                    f"{name} reads files or URLs; queries here read only the loaded logs",
                )
            )
        elif name == "external_table" and calls:
            problems.append(
                KqlProblem(
                    "unsafe",
                    "external_table",
                    token.line,
                    token.column,
                    "external_table() reads data stored outside the database; queries here "
                    "read only the loaded logs",
                )
            )
        elif name == "evaluate" and not after_dot:
            plugin = _evaluate_plugin(tokens, index)
            if plugin is not None and plugin.text in UNSAFE_PLUGINS:
                problems.append(
                    KqlProblem(
                        "unsafe",
                        f"evaluate {plugin.text}",
                        token.line,
                        token.column,
                        f"the {plugin.text} plugin calls out of the process (network, "
                        "another database or a code sandbox); refused",
                    )
                )
        elif calls and not after_dot and name in _REMOTE_SOURCES:
            problems.append(
                KqlProblem(
                    "unsupported_feature",
                    f"{name}()",
                    token.line,
                    token.column,
                    f"{name}() names data in another cluster, workspace or application; "
                    "offline there is only the local logs",
                )
            )
        elif calls and not after_dot and name in BUILTINS and BUILTINS[name][0] == "refused":
            problems.append(
                KqlProblem(
                    "unsupported_feature",
                    name,
                    token.line,
                    token.column,
                    f"the Defender/Sentinel function {name}() {BUILTINS[name][1]}",
                )
            )
    return problems


def _evaluate_plugin(tokens: Sequence[_Token], index: int) -> _Token | None:
    """The plugin name after ``evaluate`` at ``index``, skipping ``hint.x = y`` pairs."""
    j = index + 1
    while j < len(tokens):
        token = tokens[j]
        if token.kind == "ident" and _next_is(tokens, j, "."):
            # hint.distribution = per_node
            j += 4
            continue
        if token.kind == "ident":
            return token
        return None
    return None


# --------------------------------------------------------------------------------------
# Parse errors
# --------------------------------------------------------------------------------------

_MISMATCHED = re.compile(r"mismatched input '(?P<tok>.*?)' expecting (?P<expected>.*)\Z", re.S)
_EXTRANEOUS = re.compile(r"extraneous input '(?P<tok>.*?)' expecting (?P<expected>.*)\Z", re.S)
_NO_VIABLE = re.compile(r"no viable alternative at input '(?P<tok>.*?)'\Z", re.S)
_TOKEN_ERROR = re.compile(r"token recognition error at: '(?P<tok>.*?)'\Z", re.S)
_MISSING = re.compile(r"missing '?(?P<what>.*?)'? at '(?P<tok>.*?)'\Z", re.S)

#: Tabular operators of KQL. After a `|`, a word that is not one of these is a typo.
_KQL_OPERATORS = _words(
    """as consume count distinct evaluate extend externaldata facet find fork getschema invoke
    join limit lookup make-graph make-series mv-apply mv-expand mvapply mvexpand order parse
    parse-kv parse-where partition print project project-away project-keep project-rename
    project-reorder range reduce render sample sample-distinct scan search serialize sort
    summarize take top top-hitters top-nested union where filter graph-match graph-to-table
    graph-shortest-paths graph-mark-components macro-expand"""
)
#: Valid operator forms that duckdb-kql's parser (1.1.2) rejects outright: a bare
#: `serialize` (with no column), and `parse-kv`.
_GRAMMAR_GAPS = _words("serialize parse-kv")
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _bracket_problem(tokens: Sequence[_Token]) -> KqlProblem | None:
    """The first unmatched bracket, which explains a parse failure better than ANTLR."""
    stack: list[_Token] = []
    for token in tokens:
        if token.kind != "punct":
            continue
        if token.text in _OPENERS:
            stack.append(token)
        elif token.text in _CLOSERS:
            if not stack or stack[-1].text != _CLOSERS[token.text]:
                return KqlProblem(
                    "parse_error",
                    token.text,
                    token.line,
                    token.column,
                    f"{token.text!r} closes a bracket that was not opened here",
                )
            stack.pop()
    if stack:
        token = stack[-1]
        return KqlProblem(
            "parse_error",
            token.text,
            token.line,
            token.column,
            f"{token.text!r} is never closed (expected {_OPENERS[token.text]!r})",
        )
    return None


def _parse_problem(
    text: str,
    diagnostic_line: int,
    diagnostic_column0: int,
    message: str,
    tokens: Sequence[_Token],
    line_shift: int,
) -> KqlProblem:
    """A readable problem for ANTLR's first diagnostic (columns made 1-based)."""
    line, column = diagnostic_line, diagnostic_column0 + 1
    if line == 1:
        column = max(1, column - line_shift)
    brackets = _bracket_problem(tokens)
    if brackets is not None:
        return brackets
    match = _MISMATCHED.match(message)
    if match and match["tok"] == "|" and "<EOF>" in match["expected"]:
        # The parser could not read the `| operator …` that starts here.
        after = _token_after(tokens, line, column, "|")
        if after is not None:
            word = _word_at(text, after.line, after.column - 1) or after.text
            if word in _GRAMMAR_GAPS:
                return KqlProblem(
                    "unsupported_feature",
                    word,
                    after.line,
                    after.column,
                    f"the {word} operator in this form is not supported by duckdb-kql's parser",
                )
            if word in _KQL_OPERATORS:
                return KqlProblem(
                    "parse_error",
                    word,
                    after.line,
                    after.column,
                    f"this {word} operator does not parse; check its arguments, commas and quotes",
                )
            return KqlProblem(
                "parse_error",
                word,
                after.line,
                after.column,
                f"unknown tabular operator {word!r} after '|'",
            )
    gap = _grammar_gap(
        match or _EXTRANEOUS.match(message) or _NO_VIABLE.match(message), tokens, line, column
    )
    if gap is not None:
        return gap
    if match:
        token = match["tok"]
        if token == "<EOF>":
            return KqlProblem(
                "parse_error",
                "end of query",
                line,
                column,
                "the query ends too early: an expression, operator or closing bracket is missing",
            )
        return KqlProblem(
            "parse_error", token, line, column, f"unexpected {token!r}{_expected(match)}"
        )
    for pattern, what in ((_EXTRANEOUS, "unexpected"), (_NO_VIABLE, "cannot parse")):
        match = pattern.match(message)
        if match:
            token = match["tok"].strip() or match["tok"]
            return KqlProblem("parse_error", token, line, column, f"{what} {token!r}")
    match = _TOKEN_ERROR.match(message)
    if match:
        token = re.sub(r"(\\[nr])+\Z", "", match["tok"]).rstrip("\r\n")
        return KqlProblem(
            "parse_error",
            token,
            line,
            column,
            f"unrecognised text {token!r} (an unterminated string or a stray character)",
        )
    match = _MISSING.match(message)
    if match:
        return KqlProblem("parse_error", match["tok"], line, column, f"missing {match['what']!r}")
    return KqlProblem("parse_error", "query", line, column, message)


#: Valid KQL functions that duckdb-kql's grammar does not accept where they are used.
_GRAMMAR_GAP_CALLS = _words("table")


def _grammar_gap(
    match: re.Match[str] | None, tokens: Sequence[_Token], line: int, column: int
) -> KqlProblem | None:
    """A parse error at ``table(...)`` and the like: valid KQL the parser lacks."""
    if match is None or match["tok"] not in _GRAMMAR_GAP_CALLS:
        return None
    for index, token in enumerate(tokens):
        if token.line == line and token.column == column and _next_is(tokens, index, "("):
            return KqlProblem(
                "unsupported_feature",
                f"{token.text}()",
                line,
                column,
                f"{token.text}(): duckdb-kql's parser does not accept this function here",
            )
    return None


def _expected(match: re.Match[str]) -> str:
    expected = match["expected"].strip()
    if expected.startswith("{"):
        items = [item.strip() for item in expected.strip("{}").split(",")]
        if len(items) > 6:
            return ""
        expected = " or ".join(items)
    return f"; expected {expected}"


def _token_after(tokens: Sequence[_Token], line: int, column: int, text: str) -> _Token | None:
    for index, token in enumerate(tokens):
        if token.line == line and token.column == column and token.text == text:
            return tokens[index + 1] if index + 1 < len(tokens) else None
    return None


# --------------------------------------------------------------------------------------
# Translation errors from duckdb-kql
# --------------------------------------------------------------------------------------

_OPERATOR_CLASS = re.compile(r"(?:source:)?(?P<name>[A-Za-z]+?)(?:Operator(?:Part)?|Expression)\Z")


def _unsupported_problem(
    exc: Exception, text: str, tokens: Sequence[_Token], line_shift: int
) -> KqlProblem:
    """Map duckdb-kql's KqlUnsupportedError to a problem naming what the user wrote."""
    construct = str(getattr(exc, "construct", "") or "")
    span = getattr(exc, "span", None)
    hint = str(getattr(exc, "hint", "") or "")
    line: int | None = None
    column: int | None = None
    word: str | None = None
    if span is not None:
        line, column = span.line, span.column + 1
        word = _word_at(text, span.line, span.column)
        if line == 1:
            column = max(1, column - line_shift)
    kind, _, name = construct.partition(":")
    if name and kind == "function" and _find_ident(tokens, name, call=True) is None:
        negated = _negated_operator(tokens, name)
        if negated is not None:
            # duckdb-kql 1.1.2 reads `!has_any (…)` as `!has` applied to a call of `_any`
            return KqlProblem(
                "unsupported_feature",
                negated.text,
                negated.line,
                negated.column,
                f"the {negated.text} operator: duckdb-kql does not translate it",
            )
    if name and kind in ("function", "aggregate", "invoke"):
        token = _find_ident(tokens, name, call=True)
        if token is not None:
            line, column = token.line, token.column
        if kind == "invoke":
            return KqlProblem(
                "unsupported_feature",
                f"invoke {name}",
                line,
                column,
                f"invoke {name}(): no function {name} taking a table is available here",
            )
        what = "aggregation function" if kind == "aggregate" else "function"
        reason = (
            "no KQL built-in, Defender/Sentinel built-in or stored function of that name is "
            "available offline"
            if "stored function" in hint
            else "duckdb-kql has no translation for it"
        )
        return KqlProblem("unsupported_feature", name, line, column, f"{what} {name}(): {reason}")
    if construct.startswith(("ingestion command", "database command")):
        command = construct.rsplit(maxsplit=1)[-1]
        return KqlProblem(
            "unsafe", command, line or 1, column or 1, f"{command} writes data; refused"
        )
    if construct.startswith("control command"):
        return KqlProblem(
            "unsupported_feature",
            "control command",
            line or 1,
            column or 1,
            "control commands are not queries",
        )
    operator = _OPERATOR_CLASS.match(construct)
    if operator is not None:
        name = word or _kebab(operator["name"])
        if name == "evaluate":
            plugin = _plugin_at(tokens, line, column)
            if plugin:
                name = f"evaluate {plugin}"
        return KqlProblem(
            "unsupported_feature",
            name,
            line,
            column,
            f"{name}: duckdb-kql does not translate this operator",
        )
    category, _, node = construct.partition(":")
    if node and re.fullmatch(r"[A-Z]\w+", node):
        # `expression:TypeLiteralExpression`: name what the user wrote there instead
        name = word or node
        return KqlProblem(
            "unsupported_feature",
            name,
            line,
            column,
            f"{name}: duckdb-kql does not translate this {category}",
        )
    detail = f" ({hint})" if hint and len(hint) < 200 else ""
    return KqlProblem(
        "unsupported_feature",
        construct,
        line,
        column,
        f"{construct}: not supported by duckdb-kql{detail}",
    )


def _negated_operator(tokens: Sequence[_Token], suffix: str) -> _Token | None:
    """``!has_any`` as one token (at the ``!``), when an identifier after ``!`` ends in
    ``suffix``."""
    for index, token in enumerate(tokens):
        if (
            token.kind == "ident"
            and token.text.endswith(suffix)
            and token.text != suffix
            and _prev_is(tokens, index, "!")
        ):
            bang = tokens[index - 1]
            return _Token("ident", "!" + token.text, bang.line, bang.column, bang.offset)
    return None


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "-", name).lower()


def _plugin_at(tokens: Sequence[_Token], line: int | None, column: int | None) -> str | None:
    for index, token in enumerate(tokens):
        if token.text == "evaluate" and token.line == line and token.column == column:
            plugin = _evaluate_plugin(tokens, index)
            return plugin.text if plugin else None
    return None


def _schema_problem(exc: Exception, tokens: Sequence[_Token], known: Sequence[str]) -> KqlProblem:
    """Map duckdb-kql's KqlSchemaError: unknown tables, remote clusters, case clashes."""
    name = str(getattr(exc, "name", "") or "")
    hint = str(getattr(exc, "hint", "") or "")
    token = _find_ident(tokens, name.rsplit(".", maxsplit=1)[-1]) if name else None
    line = token.line if token else None
    column = token.column if token else None
    if "unknown table" in hint or "matched no table" in hint:
        return _unknown_table(name, known, line, column)
    if "no cluster here" in hint or name.startswith("cluster("):
        cluster = _find_ident(tokens, "cluster", call=True)
        return KqlProblem(
            "unsupported_feature",
            "cluster()",
            cluster.line if cluster else line,
            cluster.column if cluster else column,
            "cluster() names data in another cluster; offline there is only the local logs",
        )
    if "differ only in case" in hint:
        pair = re.search(r"columns ('[^']*' and '[^']*')", hint)
        which = f"columns {pair[1]}" if pair else "two columns"
        return KqlProblem(
            "unsupported_feature",
            name,
            line,
            column,
            f"{which} differ only in case, which DuckDB cannot keep apart; rename one "
            "with project-rename",
        )
    if "query parameter" in hint:
        return KqlProblem(
            "unsupported_feature", name, line, column, f"query parameter {name}: {hint}"
        )
    return KqlProblem("unknown_column", name, line, column, f"{name}: {hint or 'schema error'}")


def _unknown_table(
    name: str, known: Sequence[str], line: int | None, column: int | None, *, loaded: bool = False
) -> KqlProblem:
    suggestion = None if loaded else _closest(name, known)
    if loaded:
        message = f"table {name!r} is in the catalog, but no logs for it are loaded"
    else:
        message = f"no table named {name!r} in the catalog"
    if suggestion:
        message += f"; did you mean {suggestion}?"
    return KqlProblem("unknown_table", name, line, column, message)


def _closest(name: str, candidates: Sequence[str]) -> str | None:
    for candidate in candidates:
        if candidate.casefold() == name.casefold() and candidate != name:
            return candidate
    by_fold = {c.casefold(): c for c in candidates}
    close = difflib.get_close_matches(name.casefold(), list(by_fold), n=1, cutoff=0.6)
    return by_fold[close[0]] if close else None


# --------------------------------------------------------------------------------------
# The generated SQL, on DuckDB's own parse tree
# --------------------------------------------------------------------------------------

#: Table functions duckdb-kql emits for `range`, `mv-expand` and friends. Anything else
#: (read_csv, read_parquet, glob, query, …) in a translation is refused.
SAFE_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})
UNSAFE_FUNCTIONS = frozenset({"getenv", "current_setting", "read_text", "read_blob"})


@dataclass
class _SqlRefs:
    tables: list[tuple[str, str, str]] = field(default_factory=list)  # catalog, schema, name
    ctes: set[str] = field(default_factory=set)
    table_functions: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    error: str | None = None


def _sql_refs(con: duckdb.DuckDBPyConnection, sql: str) -> _SqlRefs:
    """What the SQL reads, from ``json_serialize_sql``: base tables, CTE names, table
    functions and scalar functions. A statement that is not a single SELECT cannot be
    serialised and comes back with ``error`` set."""
    import orjson

    refs = _SqlRefs()
    try:
        raw = con.execute("SELECT json_serialize_sql($1::VARCHAR)", [sql]).fetchall()[0][0]
    except duckdb.Error as exc:
        refs.error = str(exc).splitlines()[0]
        return refs
    tree = orjson.loads(raw)
    if tree.get("error"):
        refs.error = str(tree.get("error_message") or "not a SELECT statement")
        return refs
    statements = tree.get("statements") or []
    if len(statements) != 1:
        refs.error = f"{len(statements)} statements where one SELECT was expected"
        return refs
    _walk(statements, refs)
    return refs


def _walk(node: object, refs: _SqlRefs) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, refs)
        return
    if not isinstance(node, dict):
        return
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        for entry in cte_map.get("map") or []:
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                refs.ctes.add(entry["key"])
    kind = node.get("type")
    if kind == "BASE_TABLE":
        refs.tables.append(
            (
                str(node.get("catalog_name") or ""),
                str(node.get("schema_name") or ""),
                str(node.get("table_name") or ""),
            )
        )
    elif kind == "TABLE_FUNCTION":
        function = node.get("function")
        if isinstance(function, dict):
            refs.table_functions.add(str(function.get("function_name", "")).lower())
    if node.get("class") == "FUNCTION" and kind == "FUNCTION":
        refs.functions.add(str(node.get("function_name", "")).lower())
    for value in node.values():
        if isinstance(value, dict | list):
            _walk(value, refs)


def _sql_safety_problem(refs: _SqlRefs) -> KqlProblem | None:
    """Defence in depth: a translation must be one SELECT over tables and generators."""
    if refs.error is not None:
        return KqlProblem(
            "unsafe",
            "generated SQL",
            None,
            None,
            f"the translation is not a single SELECT ({refs.error}); refused",
        )
    reading = sorted(refs.table_functions - SAFE_TABLE_FUNCTIONS)
    if reading:
        return KqlProblem(
            "unsafe",
            reading[0],
            None,
            None,
            f"the translation calls the table function {reading[0]}(), which could read "
            "files or other databases; refused",
        )
    calls = sorted(refs.functions & UNSAFE_FUNCTIONS)
    if calls:
        return KqlProblem(
            "unsafe",
            calls[0],
            None,
            None,
            f"the translation calls {calls[0]}(), which reads outside the logs; refused",
        )
    return None


def _base_tables(refs: _SqlRefs) -> list[tuple[str, str, str]]:
    """Referenced tables that are not CTEs, in first-use order, without repeats."""
    seen: set[tuple[str, str, str]] = set()
    out: list[tuple[str, str, str]] = []
    for ref in refs.tables:
        catalog, schema, name = ref
        if not catalog and not schema and name in refs.ctes:
            continue
        if ref not in seen:
            seen.add(ref)
            out.append(ref)
    return out


# --------------------------------------------------------------------------------------
# DuckDB errors on the translated SQL
# --------------------------------------------------------------------------------------

_COLUMN_ERRORS = (
    re.compile(r'Referenced column "(?P<name>(?:[^"]|"")+)" not found'),
    re.compile(r'Column "(?P<name>(?:[^"]|"")+)" referenced that exists in the SELECT clause'),
    re.compile(r'Alias with name ""(?P<name>.+?)"" exists, but aliases cannot be used'),
    re.compile(r'does not have a column named "(?P<name>(?:[^"]|"")+)"'),
    re.compile(r'Column "(?P<name>(?:[^"]|"")+)" in EXCLUDE list not found'),
    re.compile(r"Referenced column (?P<name>\w+) not found"),
)
_CANDIDATES = re.compile(r"Candidate bindings: (?P<names>.*)")
_TABLE_ERROR = re.compile(r"Table with name (?P<name>[^ ]+) does not exist")
_FUNCTION_ARGS = re.compile(r"No function matches the given name and argument types '(?P<fn>\w+)\(")
_INTERNAL_NAME = re.compile(r"^(?:_s\d+|_l\d*|_r\d*|_kql\w*|_dm_\w*)$")


def _duckdb_problem(
    exc: duckdb.Error, tokens: Sequence[_Token], known_tables: Sequence[str], columns: Sequence[str]
) -> KqlProblem:
    """Map a DuckDB error on the translated SQL to a problem located in the KQL text."""
    message = str(exc)
    first = message.splitlines()[0] if message else type(exc).__name__
    first = re.sub(r"^[A-Za-z ]+Error: ", "", first)
    if isinstance(exc, duckdb.PermissionException):
        return KqlProblem("unsafe", "file or network access", None, None, first)
    for pattern in _COLUMN_ERRORS:
        match = pattern.search(message)
        if match:
            name = match["name"].replace('""', '"')
            token = _find_ident(tokens, name, call=False)
            suggestion = _closest(name, list(columns)) or _candidate(message, name)
            text = f"no column named {name!r} in the query's input"
            if suggestion:
                text += f"; did you mean {suggestion}?"
            return KqlProblem(
                "unknown_column",
                name,
                token.line if token else None,
                token.column if token else None,
                text,
            )
    match = _TABLE_ERROR.search(message)
    if match:
        name = match["name"].strip('"')
        token = _find_ident(tokens, name)
        return _unknown_table(
            name, known_tables, token.line if token else None, token.column if token else None
        )
    match = _FUNCTION_ARGS.search(message)
    construct = match["fn"] if match else "expression"
    return KqlProblem("type_error", construct, None, None, first)


def _candidate(message: str, name: str) -> str | None:
    match = _CANDIDATES.search(message)
    if not match:
        return None
    names = [n.strip().strip('"') for n in match["names"].split(",")]
    names = [n.split(".")[-1].strip('"') for n in names if n]
    names = [n for n in names if not _INTERNAL_NAME.match(n)]
    return _closest(name, names)


# --------------------------------------------------------------------------------------
# Case-sensitivity of column names
# --------------------------------------------------------------------------------------

_KEYWORDS = _words(
    """and or not by on in has contains startswith endswith matches regex between kind with
    step from to of let set declare true false null bool boolean int long string datetime
    date dynamic real double timespan time guid decimal where filter project extend summarize
    join union take limit top sort order distinct count mv expand apply evaluate parse lookup
    as print range datatable render invoke materialize toscalar typeof isfuzzy withsource
    hint asc desc nulls first last inner innerunique leftouter rightouter fullouter leftanti
    rightanti leftsemi rightsemi anti semi away rename reorder keep bagexpansion array bag
    itemindex with_itemindex simple relaxed notempty"""
)


def _case_problems(tokens: Sequence[_Token], columns: Mapping[str, str]) -> list[KqlProblem]:
    """Columns written with the wrong case, which DuckDB would bind anyway.

    ``columns`` maps every case-folded column name of the tables the query reads to its
    spelling. An identifier is reported when it is not a function call, a property after
    ``.``, a keyword or a name the query defines itself (before ``=`` or ``:``, after
    ``let``/``as``, or in a ``parse … with`` pattern), matches no column exactly, and
    matches one except for case.
    """
    exact = set(columns.values())
    defined: set[str] = set()
    in_parse = False
    for index, token in enumerate(tokens):
        if token.text in {"|", ";"}:
            in_parse = False
        if token.kind != "ident":
            continue
        if token.text in ("parse", "parse-where", "parse-kv") and _prev_is(tokens, index, "|"):
            in_parse = True
        if in_parse or _next_is(tokens, index, "=") or _next_is(tokens, index, ":"):
            defined.add(token.text)
        if _prev_is(tokens, index, "let") or _prev_is(tokens, index, "as"):
            defined.add(token.text)
    problems: list[KqlProblem] = []
    reported: set[str] = set()
    for index, token in enumerate(tokens):
        name = token.text
        if token.kind != "ident" or name in exact or name in defined or name in reported:
            continue
        if name.lower() in _KEYWORDS or _next_is(tokens, index, "("):
            continue
        if _prev_is(tokens, index, ".") or _prev_is(tokens, index, "-"):
            continue
        spelling = columns.get(name.casefold())
        if spelling is None:
            continue
        reported.add(name)
        problems.append(
            KqlProblem(
                "unknown_column",
                name,
                token.line,
                token.column,
                f"no column named {name!r}: KQL names are case-sensitive; did you mean {spelling}?",
            )
        )
    return problems


# --------------------------------------------------------------------------------------
# Translation
# --------------------------------------------------------------------------------------

TableSchema = dict[str, list[tuple[str, str]]]  # table -> [(column, KQL type)]


def _catalog_schema(catalog: Catalog) -> TableSchema:
    """Every catalog table's columns. A column whose name differs from an earlier one only
    in case (AzureDiagnostics ``clientIP_s``/``clientIp_s``) is dropped: DuckDB cannot hold
    both, and duckdb-kql refuses a schema with both."""
    out: TableSchema = {}
    for table in catalog.tables():
        seen: set[str] = set()
        columns: list[tuple[str, str]] = []
        for column in table.columns:
            if column.name.casefold() in seen:
                continue
            seen.add(column.name.casefold())
            columns.append((column.name, column.type))
        out[table.name] = columns
    return out


@dataclass
class _Translation:
    sql: str
    parameters: dict[str, Any]
    line_shift: int


@functools.cache
def _stored_functions() -> ResolvedFunctions:
    """The provided built-ins, parsed once: duckdb-kql parses a list of definitions on every
    call (about 60 ms for ours) but takes an already-parsed registry as it is."""
    from duckdb_kql.stored_functions import parse_functions

    parsed = parse_functions(list(STORED_FUNCTIONS))
    assert parsed is not None
    return parsed


def _prelude(tokens: Sequence[_Token]) -> str:
    """The ``let`` definitions for ``invoke Name()`` forms the query uses."""
    parts = []
    for name, prelude in INVOKE_PRELUDES.items():
        for index, token in enumerate(tokens):
            if token.text == name and _prev_is(tokens, index, "invoke"):
                parts.append(prelude)
                break
    return "".join(parts)


def _translate(
    text: str,
    tokens: Sequence[_Token],
    schema: Mapping[str, list[str]],
    known: Sequence[str],
    *,
    bind_missing: bool,
) -> _Translation | KqlProblem:
    import duckdb_kql
    from duckdb_kql import errors as kql_errors

    prelude = _prelude(tokens)
    source = prelude + text
    parameters: dict[str, Any] | None = None
    if bind_missing and "query_parameters" in text:
        # Checking offline: a declared parameter without a default is bound to null, so
        # the query still binds and its columns are checked.
        try:
            declared = duckdb_kql.query_parameters(source)
        except kql_errors.KqlError:
            declared = []
        parameters = {p.name: None for p in declared if p.required} or None
    try:
        result = duckdb_kql.to_sql(
            source,
            schema=dict(schema),
            parameters=parameters,
            allow_write=False,
            functions=_stored_functions(),
        )
    except kql_errors.KqlSyntaxError as exc:
        first = exc.diagnostics[0] if exc.diagnostics else None
        if first is None:
            return KqlProblem("parse_error", "query", None, None, str(exc))
        return _parse_problem(
            text, first.span.line, first.span.column, first.message, tokens, len(prelude)
        )
    except kql_errors.KqlUnsupportedError as exc:
        return _unsupported_problem(exc, text, tokens, len(prelude))
    except kql_errors.KqlSchemaError as exc:
        return _schema_problem(exc, tokens, known)
    except (kql_errors.KqlError, ValueError, TypeError) as exc:
        return KqlProblem("unsupported_feature", "query", None, None, str(exc))
    if result.unbound:
        names = ", ".join(result.unbound)
        return KqlProblem(
            "unsupported_feature",
            names,
            None,
            None,
            f"declared query parameter(s) {names} have no value and no default",
        )
    return _Translation(str(result), dict(result.parameters), len(prelude))


def _prepare(
    text: str, schema: Mapping[str, list[str]], known: Sequence[str], *, bind_missing: bool
) -> tuple[list[_Token], _Translation | list[KqlProblem]]:
    """Static refusals, parsing and translation, in that order."""
    tokens = _tokens(text)
    if not tokens:
        return tokens, [KqlProblem("parse_error", "query", 1, 1, "the query is empty")]
    problems = _static_problems(text, tokens)
    if problems:
        return tokens, problems
    # Parsed once, by to_sql: its KqlSyntaxError carries the same diagnostics as validate().
    translated = _translate(text, tokens, schema, known, bind_missing=bind_missing)
    if isinstance(translated, KqlProblem):
        return tokens, [translated]
    return tokens, translated


def _resolve_tables(
    refs: _SqlRefs,
    tokens: Sequence[_Token],
    available: Sequence[str],
    known: Sequence[str],
    *,
    loaded: bool,
) -> tuple[list[str], list[KqlProblem]]:
    """The tables the SQL reads, and unknown_table problems for those not available.
    Matching is exact: KQL table names are case-sensitive."""
    names: list[str] = []
    problems: list[KqlProblem] = []
    for catalog_name, schema_name, name in _base_tables(refs):
        qualified = ".".join(p for p in (catalog_name, schema_name, name) if p)
        if qualified in available:
            names.append(qualified)
            continue
        token = _find_ident(tokens, name)
        line = token.line if token else None
        column = token.column if token else None
        in_catalog = qualified in known
        problems.append(
            _unknown_table(
                qualified,
                known if not in_catalog else available,
                line,
                column,
                loaded=loaded and in_catalog,
            )
        )
    return names, problems


def _columns_of(tables: Sequence[str], schema: Mapping[str, list[str]]) -> dict[str, str]:
    folded: dict[str, str] = {}
    for table in tables:
        for column in schema.get(table, []):
            folded.setdefault(column.casefold(), column)
    return folded


# --------------------------------------------------------------------------------------
# check_kql
# --------------------------------------------------------------------------------------


def check_kql(
    text: str,
    *,
    catalog: Catalog | None = None,
    extra_tables: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> KqlCheck:
    """Check offline that a KQL query would run against tables of the catalog.

    ``extra_tables`` adds (or replaces) tables: name -> ``[(column, KQL type), …]``, for
    custom logs (``MyApp_CL``) the catalog does not know. Raises InputError only for a bad
    ``extra_tables`` type name; every problem with the query is returned, not raised.
    """
    catalog = catalog if catalog is not None else load_catalog()
    typed = _catalog_schema(catalog)
    for name, columns in (extra_tables or {}).items():
        typed[name] = [(column, kql_type) for column, kql_type in columns]
    for name, columns in typed.items():
        for column, kql_type in columns:
            try:
                duckdb_type(kql_type)
            except (ValueError, KeyError):
                raise InputError(
                    f"table {name}: column {column} has unknown KQL type {kql_type!r}"
                ) from None
    schema = {name: [c for c, _ in columns] for name, columns in typed.items()}
    known = sorted(schema)

    tokens, prepared = _prepare(text, schema, known, bind_missing=True)
    if isinstance(prepared, list):
        return KqlCheck(False, prepared)
    sql = prepared.sql

    con = connect()
    try:
        refs = _sql_refs(con, sql)
        unsafe = _sql_safety_problem(refs)
        if unsafe is not None:
            return KqlCheck(False, [unsafe], sql=sql)
        tables, problems = _resolve_tables(refs, tokens, known, known, loaded=False)
        if problems:
            return KqlCheck(False, problems, tables, sql)
        problems = _case_problems(tokens, _columns_of(tables, schema))
        if problems:
            return KqlCheck(False, problems, tables, sql)
        for table in tables:
            con.execute(_create_table_sql(table, typed[table]))
        lock_down(con, CHECK_MEMORY_LIMIT)
        problem = _run_empty(con, prepared, tokens, known, _all_columns(tables, schema))
        if problem is not None:
            return KqlCheck(False, [problem], tables, sql)
        return KqlCheck(True, [], tables, sql)
    finally:
        con.close()


def _all_columns(tables: Sequence[str], schema: Mapping[str, list[str]]) -> list[str]:
    return [column for table in tables for column in schema.get(table, [])]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create_table_sql(table: str, columns: Sequence[tuple[str, str]]) -> str:
    body = ", ".join(f"{_quote(column)} {duckdb_type(kql_type)}" for column, kql_type in columns)
    return f"CREATE TABLE {_quote(table)} ({body})"


def _run_empty(
    con: duckdb.DuckDBPyConnection,
    prepared: _Translation,
    tokens: Sequence[_Token],
    known: Sequence[str],
    columns: Sequence[str],
) -> KqlProblem | None:
    def work() -> None:
        cursor = con.execute(prepared.sql, prepared.parameters or None)
        cursor.fetchmany(1)

    try:
        _with_timeout(con, work, CHECK_TIMEOUT, "kql check")
    except QueryTimeoutError:
        return None  # it bound and started running: the query is well-formed
    except duckdb.Error as exc:
        return _duckdb_problem(exc, tokens, known, columns)
    return None


# --------------------------------------------------------------------------------------
# run_kql
# --------------------------------------------------------------------------------------


def _live_schema(con: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> dict[str, list[str]]:
    wanted = set(tables)
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_catalog = current_database() "
        "ORDER BY table_name, ordinal_position"
    ).fetchall()
    schema: dict[str, list[str]] = {}
    for table, column in rows:
        if table in wanted:
            schema.setdefault(str(table), []).append(str(column))
    return schema


def run_kql(
    con: duckdb.DuckDBPyConnection,
    text: str,
    *,
    timeout: float,
    label: str,
    tables_present: Sequence[str],
    max_rows: int | None = None,
    catalog: Catalog | None = None,
) -> KqlResult:
    """Run a KQL query on the live, locked-down logs connection.

    Refuses unsafe constructs, parse errors, unsupported constructs, tables without loaded
    logs (``tables_present``) and case-mismatched columns before anything runs, by raising
    the matching :class:`KqlError`; then runs the SQL under ``with_timeout`` (raising
    QueryTimeoutError that names ``label``). ``max_rows`` caps the rows fetched
    (``truncated`` says whether more were there).
    """
    catalog = catalog if catalog is not None else load_catalog()
    schema = _live_schema(con, tables_present)
    present = sorted(schema)
    known = sorted(set(catalog.names()) | set(present))
    tokens, prepared = _prepare(text, schema, present, bind_missing=False)
    if isinstance(prepared, list):
        raise KqlError.from_problem(prepared[0])
    refs = _sql_refs(con, prepared.sql)
    unsafe = _sql_safety_problem(refs)
    if unsafe is not None:
        raise KqlError.from_problem(unsafe)
    tables, problems = _resolve_tables(refs, tokens, present, known, loaded=True)
    if not problems:
        problems = _case_problems(tokens, _columns_of(tables, schema))
    if problems:
        raise KqlError.from_problem(problems[0])

    def work() -> KqlResult:
        cursor = con.execute(prepared.sql, prepared.parameters or None)
        columns = [d[0] for d in cursor.description or []]
        if max_rows is None:
            return KqlResult(columns, cursor.fetchall(), prepared.sql)
        rows = cursor.fetchmany(max_rows + 1)
        return KqlResult(columns, rows[:max_rows], prepared.sql, len(rows) > max_rows)

    try:
        return _with_timeout(con, work, timeout, label)
    except duckdb.OutOfMemoryException as exc:
        raise KqlResourceError(
            f"{label} ran out of memory: {str(exc).splitlines()[0]}",
            hint="narrow the rule or the logs, or raise the memory limit",
        ) from None
    except duckdb.Error as exc:
        problem = _duckdb_problem(exc, tokens, known, _all_columns(tables, schema))
        raise KqlError.from_problem(problem) from None
