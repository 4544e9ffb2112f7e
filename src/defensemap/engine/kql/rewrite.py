"""Exact rewrites of valid KQL that duckdb-kql lacks into KQL it translates.

Each rewrite produces the same answer Kusto gives, or is not made (the construct is then
refused by name, as before). Rewrites work on tokens, never inside strings or comments,
keep the number of line breaks, and record their edits so that a position duckdb-kql
reports in the rewritten text maps back to where the user wrote it.

* Deprecated aliases Kusto still accepts (``makeset`` → ``make_set``, …): same function.
* ``split(s, d, i)`` with a literal index ``i ≥ 0`` → ``array_slice(split(s, d), i, i)``:
  Kusto returns the one-element array ``[part i]``, or ``[]`` when there is no part ``i``.
* ``T between (low .. 1h)`` where ``T`` is a catalog datetime column the query does not
  redefine: Kusto reads a timespan high bound after a datetime as ``low + 1h``, which is
  written out as ``((low) + 1h)`` (duckdb-kql only does this when ``low`` is a literal or a
  datetime function, and DuckDB refuses the rest).
* The deprecated ``replace(regex, rewrite, text)`` → ``replace_regex(text, regex, rewrite)``
  (duckdb-kql took it for ``replace_string`` and answered wrongly).
* ``make_set_if``, ``make_list_if``, ``maxif``, ``minif`` → the plain aggregate over
  ``iff(predicate, value, dynamic(null))`` (see :data:`IF_AGGREGATES`).

Rewrites nest: each pass makes the innermost changes, and positions map back through
every pass.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from defensemap.engine.kql.scan import _defined_names, _next_is, _prev_is, _Token, _tokens

#: Deprecated spellings Kusto still accepts, and the function each is an alias of.
DEPRECATED_ALIASES = {
    "makeset": "make_set",
    "makelist": "make_list",
    "parsejson": "parse_json",
    "arraylength": "array_length",
    "notempty": "isnotempty",
    "notnull": "isnotnull",
}

#: A timespan literal: a number with one of KQL's time units.
_TIMESPAN = re.compile(
    r"[0-9]+(?:\.[0-9]+)?(?:d|h|hr|hrs|hour|hours|m|min|minute|minutes|s|sec|second|seconds"
    r"|ms|milli|millis|millisecond|milliseconds|microsecond|microseconds|tick|ticks|day|days)"
)


@dataclass(frozen=True, order=True)
class _Edit:
    offset: int  # in the text of its pass
    length: int
    text: str


@dataclass(frozen=True)
class _Change:
    """One rewrite: its edits are made together, in one pass, or not at all."""

    edits: tuple[_Edit, ...]

    @property
    def start(self) -> int:
        return min(edit.offset for edit in self.edits)

    @property
    def end(self) -> int:
        return max(edit.offset + edit.length for edit in self.edits)


@dataclass
class Rewritten:
    """The rewritten text and how to map its positions back to the original."""

    original: str
    text: str
    passes: list[list[_Edit]] = field(default_factory=list)

    def to_original(self, line: int, column0: int) -> tuple[int, int]:
        """A 1-based line and 0-based column of ``text`` as a position in ``original``."""
        offset = _offset(self.text, line, column0)
        for edits in reversed(self.passes):
            offset = _before(offset, edits)
        return _position(self.original, offset)


def _before(offset: int, edits: Sequence[_Edit]) -> int:
    """An offset of a pass's output as an offset of its input; inside inserted text, the
    start of the insertion."""
    shift = 0
    for edit in edits:
        start = edit.offset + shift
        if offset < start:
            break
        if offset < start + len(edit.text):
            return edit.offset
        shift += len(edit.text) - edit.length
    return offset - shift


def _offset(text: str, line: int, column0: int) -> int:
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    index = min(max(line, 1), len(starts)) - 1
    return starts[index] + column0


def _position(text: str, offset: int) -> tuple[int, int]:
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1)


#: Rewrites nest (``make_set_if(replace(…), …)``): each pass makes the innermost ones.
_MAX_PASSES = 8


def rewrite(text: str, datetime_columns: Collection[str] = ()) -> Rewritten:
    """``text`` with every exact rewrite applied (see the module docstring)."""
    passes: list[list[_Edit]] = []
    current = text
    for _ in range(_MAX_PASSES):
        changes = _innermost(_changes(current, set(datetime_columns)))
        if not changes:
            break
        edits = sorted(edit for change in changes for edit in change.edits)
        passes.append(edits)
        current = _apply(current, edits)
    return Rewritten(text, current, passes)


def _changes(text: str, datetime_columns: set[str]) -> list[_Change]:
    tokens = _tokens(text)
    changes = _alias_changes(tokens) + _split_changes(text, tokens)
    changes += _replace_changes(text, tokens) + _if_aggregate_changes(text, tokens)
    changes += _capped_changes(text, tokens)
    changes += _between_changes(text, tokens, datetime_columns - _defined_names(tokens))
    return changes


def _innermost(changes: list[_Change]) -> list[_Change]:
    """Changes that do not touch each other, the smallest first: an outer one is made in
    the next pass, over the already rewritten inner text."""
    chosen: list[_Change] = []
    for change in sorted(changes, key=lambda c: c.end - c.start):
        if all(change.end < other.start or other.end < change.start for other in chosen):
            chosen.append(change)
    return chosen


def _apply(text: str, edits: Sequence[_Edit]) -> str:
    out: list[str] = []
    last = 0
    for edit in edits:
        out.append(text[last : edit.offset])
        out.append(edit.text)
        last = edit.offset + edit.length
    out.append(text[last:])
    return "".join(out)


def _is_call(tokens: Sequence[_Token], index: int) -> bool:
    token = tokens[index]
    return (
        token.kind == "ident" and _next_is(tokens, index, "(") and not _prev_is(tokens, index, ".")
    )


def _alias_changes(tokens: Sequence[_Token]) -> list[_Change]:
    """Deprecated function names replaced by the function they stand for."""
    return [
        _Change((_Edit(token.offset, len(token.text), DEPRECATED_ALIASES[token.text]),))
        for index, token in enumerate(tokens)
        if token.text in DEPRECATED_ALIASES and _is_call(tokens, index)
    ]


def _arguments(tokens: Sequence[_Token], open_index: int) -> tuple[list[list[int]], int] | None:
    """Token indexes of each top-level argument of the call whose ``(`` is at
    ``open_index``, and the index of its ``)``; None when it is never closed."""
    depth = 0
    arguments: list[list[int]] = [[]]
    for index in range(open_index, len(tokens)):
        text = tokens[index].text
        if text in "([{" and tokens[index].kind == "punct":
            depth += 1
            if depth == 1:
                continue
        elif text in ")]}" and tokens[index].kind == "punct":
            depth -= 1
            if depth == 0:
                return arguments, index
        elif text == "," and depth == 1:
            arguments.append([])
            continue
        arguments[-1].append(index)
    return None


def _split_changes(text: str, tokens: Sequence[_Token]) -> list[_Change]:
    """``split(s, d, i)`` with a literal ``i ≥ 0`` → ``array_slice(split(s, d), i, i)``."""
    changes: list[_Change] = []
    for index, token in enumerate(tokens):
        if token.text != "split" or not _is_call(tokens, index):
            continue
        found = _arguments(tokens, index + 1)
        if found is None:
            continue
        arguments, close = found
        if len(arguments) != 3 or not all(arguments) or len(arguments[2]) != 1:
            continue
        literal = tokens[arguments[2][0]]
        if literal.kind != "number" or not literal.text.isdigit():
            continue
        comma = tokens[arguments[1][-1] + 1]
        end = tokens[close].offset + 1
        if "\n" in text[comma.offset : end]:
            continue
        tail = f"), {literal.text}, {literal.text})"
        changes.append(
            _Change(
                (
                    _Edit(token.offset, 0, "array_slice("),
                    _Edit(comma.offset, end - comma.offset, tail),
                )
            )
        )
    return changes


def _source(text: str, tokens: Sequence[_Token], indexes: list[int]) -> str:
    """The text of an argument, from its first token to the end of its last."""
    last = tokens[indexes[-1]]
    return text[tokens[indexes[0]].offset : last.offset + len(last.text)]


def _call_change(text: str, start: int, close: _Token, replacement: str) -> _Change:
    """``text[start .. close]`` replaced, with as many line breaks as it had (a comment
    or line break between arguments is dropped; one inside an argument stays)."""
    end = close.offset + 1
    missing = text.count("\n", start, end) - replacement.count("\n")
    return _Change((_Edit(start, end - start, replacement + "\n" * max(0, missing)),))


def _replace_changes(text: str, tokens: Sequence[_Token]) -> list[_Change]:
    """The deprecated ``replace(regex, rewrite, text)`` → ``replace_regex(text, regex,
    rewrite)``: same function, text first. duckdb-kql reads ``replace`` as
    ``replace_string(text, lookup, rewrite)``, which would be a wrong answer.

    Signatures: replace_regex(source, lookup_regex, rewrite_pattern) at
    https://learn.microsoft.com/kusto/query/replace-regex-function ("Deprecated aliases:
    replace()"), and replace(regex, rewrite, source) in Kusto's own language service,
    microsoft/Kusto-Query-Language src/Kusto.Language/Functions.cs (``Replace``).
    """
    changes: list[_Change] = []
    for index, token in enumerate(tokens):
        if token.text != "replace" or not _is_call(tokens, index):
            continue
        found = _arguments(tokens, index + 1)
        if found is None or len(found[0]) != 3 or not all(found[0]):
            continue
        regex, rewrite_pattern, source = (_source(text, tokens, a) for a in found[0])
        replacement = f"replace_regex({source}, {regex}, {rewrite_pattern})"
        changes.append(_call_change(text, token.offset, tokens[found[1]], replacement))
    return changes


#: Conditional aggregates duckdb-kql lacks → (the plain aggregate, Kusto's result-name
#: prefix). Only the two-argument form: duckdb-kql ignores make_set's and make_list's
#: ``maxSize``, so ``make_set_if(e, p, n)`` stays refused. Each skips nulls as its plain form does
#: (https://learn.microsoft.com/kusto/query/make-set-if-aggregation-function: "Null values
#: are ignored"), so ``f_if(e, p)`` is ``f(iff(p, e, dynamic(null)))``: duckdb-kql renders
#: that null as an untyped SQL NULL, which takes ``e``'s type. Prefixes are those of
#: Kusto.Language's Aggregates.cs (``summarize make_set_if(Name, …)`` is ``set_Name``).
IF_AGGREGATES = {
    "make_set_if": ("make_set", "set"),
    "make_list_if": ("make_list", "list"),
    "maxif": ("max", "maxif"),
    "minif": ("min", "minif"),
}


def _if_aggregate_changes(text: str, tokens: Sequence[_Token]) -> list[_Change]:
    """``make_set_if(e, p)`` → ``make_set(iff(p, e, dynamic(null)))``, and the
    like (:data:`IF_AGGREGATES`), within a ``summarize`` aggregation. Unnamed, Kusto names
    the column ``set_e``: that name is written out when ``e`` is a plain column and the
    call is the whole aggregation; other unnamed forms are left alone (and refused)."""
    items = _summarize_items(tokens)
    changes: list[_Change] = []
    for index, token in enumerate(tokens):
        if token.text not in IF_AGGREGATES or not _is_call(tokens, index) or index not in items:
            continue
        plain, prefix = IF_AGGREGATES[token.text]
        found = _arguments(tokens, index + 1)
        if found is None or len(found[0]) != 2 or not all(found[0]):
            continue
        value = found[0][0]
        name = _auto_name(tokens, index, found[1], items, value, prefix)
        if name is None:
            continue
        value_text, predicate = (_source(text, tokens, a) for a in found[0])
        call = f"{name}{plain}(iff({predicate}, {value_text}, dynamic(null)))"
        changes.append(_call_change(text, token.offset, tokens[found[1]], call))
    return changes


def _auto_name(
    tokens: Sequence[_Token],
    index: int,
    close: int,
    items: dict[int, tuple[int, bool]],
    value: list[int],
    prefix: str,
) -> str | None:
    """``""`` for a named aggregation; Kusto's automatic ``prefix_e = `` for an unnamed one
    over a plain column ``e`` that is the whole item (``max(e) + 1h`` is named ``Column1``);
    ``None`` when no name can be written."""
    item_start, named = items[index]
    if named:
        return ""
    after = tokens[close + 1].text if close + 1 < len(tokens) else ""
    whole = item_start == index and after in {"", ",", "by", "|", ";"}
    if not whole or len(value) != 1 or tokens[value[0]].kind != "ident":
        return None
    return f"{prefix}_{tokens[value[0]].text} = "


#: Aggregates whose optional ``maxSize`` duckdb-kql accepts and ignores (a wrong answer once
#: the cap is reached) → Kusto's result-name prefix. ``make_set(e, n)`` with a literal ``n``
#: becomes ``array_slice(make_set(e), 0, n - 1)``: Kusto returns "up to maxSize" elements in no
#: stated order, so the first ``n`` of the full set are a valid answer. Every other capped
#: call is refused (:func:`capped_aggregate`).
CAPPED_AGGREGATES = {"make_set": "set", "make_list": "list"}
_CAP_REFUSED = frozenset(
    {*CAPPED_AGGREGATES, "make_set_with_nulls", "make_list_with_nulls", "make_bag"}
)


def _capped_changes(text: str, tokens: Sequence[_Token]) -> list[_Change]:
    """``make_set(e, n)`` / ``make_list(e, n)`` inside a ``summarize``, named or over a plain
    column (Kusto's ``set_e`` name written out), with ``n`` a positive integer literal."""
    items = _summarize_items(tokens)
    changes: list[_Change] = []
    for index, token in enumerate(tokens):
        if token.text not in CAPPED_AGGREGATES or not _is_call(tokens, index) or index not in items:
            continue
        found = _arguments(tokens, index + 1)
        if found is None or len(found[0]) != 2 or not all(found[0]):
            continue
        value, cap = found[0]
        if len(cap) != 1 or not tokens[cap[0]].text.isdecimal() or int(tokens[cap[0]].text) < 1:
            continue
        name = _auto_name(tokens, index, found[1], items, value, CAPPED_AGGREGATES[token.text])
        if name is None:
            continue
        last = int(tokens[cap[0]].text) - 1
        call = f"{name}array_slice({token.text}({_source(text, tokens, value)}), 0, {last})"
        changes.append(_call_change(text, token.offset, tokens[found[1]], call))
    return changes


def capped_aggregate(text: str) -> tuple[str, int] | None:
    """The first capped aggregate (``make_set(e, n)`` …) left after the rewrites, and its
    offset in ``text``: it would be answered uncapped, so it is refused."""
    tokens = _tokens(text)
    for index, token in enumerate(tokens):
        if token.text in _CAP_REFUSED and _is_call(tokens, index):
            found = _arguments(tokens, index + 1)
            if found is not None and len(found[0]) > 1:
                return token.text, token.offset
    return None


def _summarize_items(tokens: Sequence[_Token]) -> dict[int, tuple[int, bool]]:
    """For every token of a ``summarize`` aggregation: the index where its aggregation
    starts, and whether a name (``Name =``, ``['A name'] =``) comes before it."""
    items: dict[int, tuple[int, bool]] = {}
    for index, token in enumerate(tokens):
        if token.text != "summarize" or not _prev_is(tokens, index, "|"):
            continue
        start = index + 1
        while start < len(tokens) and tokens[start].text == "hint" and _next_is(tokens, start, "."):
            start += 5  # hint . strategy = shuffle
        depth = 0
        item, named = start, False
        for at in range(start, len(tokens)):
            text = tokens[at].text
            if tokens[at].kind == "punct" and text in "([{":
                depth += 1
            elif tokens[at].kind == "punct" and text in ")]}":
                depth -= 1
                if depth < 0:
                    break
            elif depth == 0 and text in ("|", ";", "by"):
                break
            elif depth == 0 and text in (",", "="):
                item, named = (at + 1, False) if text == "," else (item, True)
                continue
            items[at] = (item, named)
    return items


def _between_changes(text: str, tokens: Sequence[_Token], columns: set[str]) -> list[_Change]:
    """``T between (low .. 1h)`` over a datetime column ``T`` → ``… .. (low) + 1h)``."""
    changes: list[_Change] = []
    for index, token in enumerate(tokens):
        if token.text != "between" or index < 1:
            continue
        at = index - 2 if _prev_is(tokens, index, "!") else index - 1
        value = tokens[at] if at >= 0 else token
        if value.kind != "ident" or value.text not in columns or _prev_is(tokens, at, "."):
            continue
        if not _next_is(tokens, index, "("):
            continue
        found = _arguments(tokens, index + 1)
        if found is None:
            continue
        arguments, _ = found
        parts = _range_parts(arguments[0], tokens) if len(arguments) == 1 else None
        if parts is None:
            continue
        low, high = parts
        high_token = tokens[high[0]]
        if len(high) != 1 or not _TIMESPAN.fullmatch(high_token.text):
            continue
        low_text = text[tokens[low[0]].offset : tokens[low[-1]].offset + len(tokens[low[-1]].text)]
        if "\n" in low_text or (len(low) == 1 and _TIMESPAN.fullmatch(tokens[low[0]].text)):
            continue
        replacement = f"(({low_text}) + {high_token.text})"  # the grammar wants one term
        changes.append(_Change((_Edit(high_token.offset, len(high_token.text), replacement),)))
    return changes


def _range_parts(
    indexes: list[int], tokens: Sequence[_Token]
) -> tuple[list[int], list[int]] | None:
    """The low and high tokens of ``low .. high`` (split at the top-level ``..``)."""
    depth = 0
    for position, index in enumerate(indexes):
        text = tokens[index].text
        if tokens[index].kind == "punct" and text in "([{":
            depth += 1
        elif tokens[index].kind == "punct" and text in ")]}":
            depth -= 1
        elif text == ".." and depth == 0:
            low, high = indexes[:position], indexes[position + 1 :]
            return (low, high) if low and high else None
    return None
