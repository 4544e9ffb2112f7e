"""Property tests for Mappings Explorer files, as for ATT&CK: whatever the bytes, the loader
answers with a mapping file or a :class:`DefensemapError`; valid files survive parsing and
storing intact, identical rows stored once and counted. Needs no ../shared data."""

from __future__ import annotations

import copy
import gzip
import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.mapping_docs import small_mapping, valid_mappings

from defensemap.errors import DefensemapError
from defensemap.model.mappings import NON_MAPPABLE
from defensemap.sources.files import GZIP_MAGIC, RawDocument
from defensemap.sources.mappings import load_mapping_file, parse_mapping_file
from defensemap.store.db import open_store
from defensemap.store.mappings import ingest_mappings, list_sets, rows_for

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
DOMAINS = {"enterprise": "enterprise-attack", "mobile": "mobile-attack", "ics": "ics-attack"}


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def _expected_type(obj: dict[str, Any]) -> str:
    raw, status = obj["mapping_type"], obj.get("status")
    if raw is None or NON_MAPPABLE in (raw, status):
        return NON_MAPPABLE
    return "technique_scores" if raw == "technique_score" else raw


@PROPERTY
@given(document=valid_mappings())
def test_valid_documents_round_trip(document: dict[str, Any]) -> None:
    original = copy.deepcopy(document)
    parsed = parse_mapping_file(RawDocument("valid.json", "0" * 64, document))
    assert document == original, "the parser must not modify its input"

    objects = original["mapping_objects"]
    counts = Counter(_canonical(o) for o in objects)
    first: dict[bytes, int] = {}
    for index, obj in enumerate(objects):
        first.setdefault(_canonical(obj), index)
    assert parsed.rows_in_file == len(objects)
    assert parsed.duplicate_rows == len(objects) - len(counts)
    assert {_canonical(r.raw): r.occurrences for r in parsed.rows} == dict(counts)
    assert {_canonical(r.raw): r.position for r in parsed.rows} == first
    assert bool(parsed.warnings) == (parsed.duplicate_rows > 0)
    for row in parsed.rows:
        raw = row.raw
        assert row.mapping_type == _expected_type(raw)
        assert row.references == [r.strip() for r in raw.get("references") or [] if r.strip()]
        for field in ("capability_id", "attack_object_id", "comments", "score_value", "status"):
            assert getattr(row, field) == raw.get(field)

    meta = original["metadata"]
    info = parsed.info
    assert info.metadata == meta
    assert (info.framework, info.framework_version, info.attack_version) == (
        meta["mapping_framework"],
        meta["mapping_framework_version"],
        meta["attack_version"],
    )
    assert info.domain == DOMAINS[meta["technology_domain"]]
    assert info.mapping_types == meta["mapping_types"]
    assert info.capability_groups == meta["capability_groups"]


@settings(PROPERTY, max_examples=30)
@given(document=valid_mappings(), packed=st.booleans())
def test_valid_documents_round_trip_through_file_and_store(
    document: dict[str, Any], packed: bool, scratch: Path
) -> None:
    """JSON bytes -> loader -> store -> read back: every distinct row's raw JSON, once, with
    its count; the set's metadata whole."""
    path = scratch / ("input.json.gz" if packed else "input.json")
    content = orjson.dumps(document)
    path.write_bytes(gzip.compress(content) if packed else content)
    parsed = load_mapping_file(path)
    db = scratch / "round-trip.sqlite"
    store = open_store(db, write=True)
    try:
        (outcome,) = ingest_mappings(store, [parsed])
        assert outcome.status == "imported"
        (item,) = list_sets(store)
        stored = rows_for(store, [item.id])
        again = ingest_mappings(store, [load_mapping_file(path)])
    finally:
        store.close()
        db.unlink()
    assert again[0].status == "unchanged"
    assert item.info.metadata == document["metadata"]
    assert (item.rows_in_file, item.rows_stored) == (
        len(document["mapping_objects"]),
        len(parsed.rows),
    )
    counts = Counter(_canonical(o) for o in document["mapping_objects"])
    assert {_canonical(r.raw): r.occurrences for _, r in stored} == dict(counts)
    assert [r.position for _, r in stored] == sorted(r.position for r in parsed.rows)


# --- arbitrary bytes ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def file_contents(draw: st.DrawFn) -> bytes:
    """Random bytes, any JSON, valid files whole or cut short, near-mapping JSON; plain,
    gzip, gzip cut short, or behind a gzip magic number."""
    valid = orjson.dumps(small_mapping())
    source = draw(st.sampled_from(["bytes", "json", "valid", "valid-cut", "near"]))
    if source == "bytes":
        plain = draw(st.binary(max_size=200))
    elif source == "json":
        plain = orjson.dumps(draw(json_values))
    elif source == "valid":
        plain = orjson.dumps(draw(valid_mappings()))
    elif source == "valid-cut":
        plain = valid[: draw(st.integers(0, len(valid) - 1))]
    else:
        plain = b'{"metadata": {}, "mapping_objects": [' + draw(st.binary(max_size=30))
    kind = draw(st.sampled_from(["plain", "gzip", "cut-gzip", "magic"]))
    if kind == "plain":
        return plain
    if kind == "magic":
        return GZIP_MAGIC + plain
    packed = gzip.compress(plain)
    if kind == "cut-gzip":
        return packed[: draw(st.integers(0, len(packed) - 1))]
    return packed


@PROPERTY
@given(content=file_contents())
def test_any_bytes_give_a_mapping_file_or_a_defensemap_error(content: bytes, scratch: Path) -> None:
    path = scratch / "input.json"
    path.write_bytes(content)
    try:
        parsed = load_mapping_file(path)
    except DefensemapError as error:
        event(type(error).__name__)
        assert str(error).startswith(str(path.resolve())), str(error)
        assert error.hint
        assert error.exit_code == 2
        return
    event("loaded")
    plain = gzip.decompress(content) if content.startswith(GZIP_MAGIC) else content
    assert parsed.rows_in_file == len(json.loads(plain)["mapping_objects"])
