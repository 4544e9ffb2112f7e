"""The KQL text itself: a small lexer, and the problems visible in the tokens alone
(unsafe or remote constructs, control commands, refused built-ins, column-name case)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from defensemap.engine.kql.problems import KqlProblem
from defensemap.engine.kql_functions import BUILTINS

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


def _defined_names(tokens: Sequence[_Token]) -> set[str]:
    """Names the query defines itself: before ``=`` or ``:``, after ``let``/``as``, and
    in a ``parse … with`` pattern. A column of that name may not be the table's."""
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
    return defined


def _case_problems(tokens: Sequence[_Token], columns: Mapping[str, str]) -> list[KqlProblem]:
    """Columns written with the wrong case, which DuckDB would bind anyway.

    ``columns`` maps every case-folded column name of the tables the query reads to its
    spelling. An identifier is reported when it is not a function call, a property after
    ``.``, a keyword or a name the query defines itself (before ``=`` or ``:``, after
    ``let``/``as``, or in a ``parse … with`` pattern), matches no column exactly, and
    matches one except for case.
    """
    exact = set(columns.values())
    defined = _defined_names(tokens)
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
