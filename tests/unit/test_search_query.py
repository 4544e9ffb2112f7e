from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from defensemap.kb.search import fts_query


def test_words_become_quoted_terms_with_a_prefix_on_the_last() -> None:
    assert fts_query("cloud serv") == '"cloud" "serv"*'
    assert fts_query("T1021.007") == '"T1021" "007"*'
    assert fts_query("  ") is None
    assert fts_query('"; DROP TABLE x; --') == '"DROP" "TABLE" "x"*'


@given(st.text())
def test_any_text_gives_a_safe_fts_expression(text: str) -> None:
    query = fts_query(text)
    if query is not None:
        body = query.removesuffix("*")
        for term in body.split(" "):
            assert term.startswith('"') and term.endswith('"') and '"' not in term[1:-1]
