"""Errors from duckdb-kql's parser and translator, and from DuckDB on the translated SQL,
mapped to problems that name what the user wrote and where."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Sequence

import duckdb

from defensemap.engine.kql.problems import KqlProblem
from defensemap.engine.kql.scan import (
    _evaluate_plugin,
    _find_ident,
    _next_is,
    _prev_is,
    _Token,
    _word_at,
    _words,
)

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
) -> KqlProblem:
    """A readable problem for ANTLR's first diagnostic, at a position of ``text``
    (1-based line, 0-based column; reported 1-based)."""
    line, column = diagnostic_line, diagnostic_column0 + 1
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
    exc: Exception, text: str, tokens: Sequence[_Token], where: tuple[int, int] | None
) -> KqlProblem:
    """Map duckdb-kql's KqlUnsupportedError to a problem naming what the user wrote;
    ``where`` is its span as a 1-based line and 0-based column of ``text``."""
    construct = str(getattr(exc, "construct", "") or "")
    hint = str(getattr(exc, "hint", "") or "")
    line: int | None = None
    column: int | None = None
    word: str | None = None
    if where is not None:
        line, column = where[0], where[1] + 1
        word = _word_at(text, where[0], where[1])
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


def _schema_problem(
    exc: Exception,
    tokens: Sequence[_Token],
    known: Sequence[str],
    available: Collection[str] = (),
    catalog: Collection[str] = (),
) -> KqlProblem:
    """Map duckdb-kql's KqlSchemaError: unknown tables, remote clusters, case clashes.
    ``available`` are the tables the query may read, ``catalog`` all the catalog knows."""
    name = str(getattr(exc, "name", "") or "")
    hint = str(getattr(exc, "hint", "") or "")
    token = _find_ident(tokens, name.rsplit(".", maxsplit=1)[-1]) if name else None
    line = token.line if token else None
    column = token.column if token else None
    if "unknown table" in hint or "matched no table" in hint:
        found = _let_source(tokens, name, set(available), set(catalog))
        if found is not None:
            return _unknown_let_table(*found, known, catalog)
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


def _let_source(
    tokens: Sequence[_Token], name: str, available: set[str], catalog: set[str], depth: int = 0
) -> tuple[_Token, str] | None:
    """The table a ``let name = …`` reads that is not available, and the let that names
    it: a catalog table its body names, else the body's leading name (through further
    lets). duckdb-kql names the outer let, which is not what is missing."""
    body = _let_body(tokens, name)
    if body is None or depth > 8:
        return None
    for index in body:
        token = tokens[index]
        if token.kind != "ident" or _next_is(tokens, index, "(") or _prev_is(tokens, index, "."):
            continue
        if token.text in catalog and token.text not in available:
            return token, name
    first = tokens[body[0]]
    if first.kind != "ident" or _next_is(tokens, body[0], "(") or first.text in available:
        return None
    deeper = _let_source(tokens, first.text, available, catalog, depth + 1)
    if deeper is not None:
        return deeper
    return (first, name) if _let_body(tokens, first.text) is None else None


def _let_body(tokens: Sequence[_Token], name: str) -> list[int] | None:
    """Token indexes of the tabular body of ``let name = body;``, or None."""
    for index, token in enumerate(tokens):
        if token.text != name or not _prev_is(tokens, index, "let"):
            continue
        if not _next_is(tokens, index, "=") or _next_is(tokens, index + 1, "("):
            return None  # a function, not a tabular value
        body: list[int] = []
        depth = 0
        for at in range(index + 2, len(tokens)):
            text = tokens[at].text
            if tokens[at].kind == "punct" and text in "([{":
                depth += 1
            elif tokens[at].kind == "punct" and text in ")]}":
                depth -= 1
            elif depth == 0 and text == ";":
                break
            body.append(at)
        return body or None
    return None


def _unknown_let_table(
    source: _Token, let_name: str, known: Sequence[str], catalog: Collection[str]
) -> KqlProblem:
    through = f"read through let {let_name}"
    if source.text in catalog:
        message = (
            f"table {source.text!r} ({through}) is in the catalog, but no logs for it are loaded"
        )
    else:
        message = f"no table named {source.text!r} in the catalog ({through})"
        suggestion = _closest(source.text, [*known, *catalog])
        if suggestion:
            message += f"; did you mean {suggestion}?"
    return KqlProblem("unknown_table", source.text, source.line, source.column, message)


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
