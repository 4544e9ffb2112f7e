from __future__ import annotations

from defensemap.model.attack import version_key
from defensemap.model.citations import ReferenceBook

REFS = [
    {
        "source_name": "Vendor 2023",
        "description": "Vendor. (2023). Report.",
        "url": "https://v.example/r",
    },
    {"source_name": "Blog", "url": "https://b.example"},
]


def test_citations_are_numbered_by_first_use_across_texts() -> None:
    book = ReferenceBook()
    first = book.cite("A (Citation: Blog) and B.(Citation: Vendor 2023)", REFS)
    second = book.cite("Again.(Citation: Vendor 2023)(Citation: Blog)")
    assert first == "A [1] and B.[2]"
    assert second == "Again.[2][1]"
    assert [(r.number, r.source_name, r.url) for r in book.references] == [
        (1, "Blog", "https://b.example"),
        (2, "Vendor 2023", "https://v.example/r"),
    ]
    assert book.references[1].description == "Vendor. (2023). Report."


def test_unknown_source_keeps_a_number_without_details() -> None:
    book = ReferenceBook()
    assert book.cite("x (Citation: Nowhere)") == "x [1]"
    assert book.references[0].description is None and book.references[0].url is None


def test_sources_learned_from_one_object_serve_later_texts() -> None:
    book = ReferenceBook()
    book.learn(REFS)
    assert book.cite("y (Citation: Blog)") == "y [1]"
    assert book.references[0].url == "https://b.example"


def test_empty_and_plain_text() -> None:
    book = ReferenceBook()
    assert book.cite(None) == ""
    assert book.cite("no markers [here](https://x)") == "no markers [here](https://x)"
    assert book.references == []


def test_versions_sort_numerically() -> None:
    assert sorted(["16.1", "9.0", "18.1", "8.2", "10.1"], key=version_key) == [
        "8.2",
        "9.0",
        "10.1",
        "16.1",
        "18.1",
    ]
