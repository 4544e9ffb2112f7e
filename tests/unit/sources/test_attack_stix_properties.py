"""Property tests: whatever the bundle looks like, the loader answers with a bundle or a
:class:`DefensemapError`, never another exception; valid bundles survive parsing intact."""

from __future__ import annotations

import copy
import gzip
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.attack_bundles import collection, small_bundle

from defensemap.errors import DefensemapError
from defensemap.model.attack import AttackBundle
from defensemap.sources.attack_stix import StixObjectModel, load_bundle, parse_bundle
from defensemap.sources.files import GZIP_MAGIC, RawDocument, read_json
from defensemap.store.attack import get_objects, ingest_attack, list_releases, relationships
from defensemap.store.db import open_store

NAME = "enterprise-attack-99.1.json"
PROPERTY = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Values orjson can both read and write: 64-bit integers, finite floats, no surrogates.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

# Fields and strings the loader treats specially, so mutations hit its branches more often.
FIELDS = [
    *StixObjectModel.model_fields,
    "relationship_type",
    "source_ref",
    "target_ref",
    "spec_version",
    "x_mitre_attack_spec_version",
    "x_mitre_contents",
    "objects",
]
tricky_strings = st.sampled_from(
    [
        "",
        "bundle",
        "relationship",
        "attack-pattern",
        "x-mitre-collection",
        "x-mitre-matrix",
        "enterprise-attack",
        "mobile-attack",
        "mitre-attack",
        "attack-pattern--0042a9f5-f053-4769-b3ef-9ad018dfa298",
        "relationship--0b4f5f64-1a8c-4a40-9d5d-5a7b2d0c1f3e",
        "x-mitre-collection--1f5f1533-f617-4ca8-9ab4-6a02367fa019",
        "attack-pattern--0042a9f5\n",
        "18.1",
        "3.²",
        "١٨.١",
        "2.1",
        "\x00",
        "T1021",
    ]
)
# Versions are compared numerically; include digits ``int`` refuses (²) or reads (١).
version_strings = st.text(alphabet="0123456789.²١", max_size=6)
# (deep-copied: sampled_from hands out the same objects, and mutations edit them in place)
any_value = (
    json_values | tricky_strings | st.sampled_from([[], {}, [{}], [""], 0, True]).map(copy.deepcopy)
)


def _containers(node: Any) -> Iterator[Any]:
    """Every dict and list in ``node`` (itself included), to pick mutation targets from."""
    if isinstance(node, dict | list):
        yield node
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            yield from _containers(child)


def _mutate(data: st.DataObject, bundle: dict[str, Any]) -> Any:
    """Apply 1-6 random edits: delete, replace, set a known field, insert junk, shuffle."""
    root: Any = bundle
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        op = data.draw(
            st.sampled_from(["delete", "replace", "set-field", "insert", "shuffle", "clone"]),
            label="op",
        )
        targets = list(_containers(root))
        objects = root.get("objects") if isinstance(root, dict) else None
        if op == "shuffle" and isinstance(objects, list):
            root["objects"] = data.draw(st.permutations(objects), label="order")
        elif op == "insert" and isinstance(objects, list):
            junk = data.draw(
                any_value | st.fixed_dictionaries({"type": tricky_strings, "id": tricky_strings}),
                label="junk",
            )
            objects.insert(data.draw(st.integers(0, len(objects)), label="at"), junk)
        elif op == "clone" and isinstance(objects, list) and objects:
            objects.append(copy.deepcopy(data.draw(st.sampled_from(objects), label="clone")))
        elif op == "set-field":
            dicts = [t for t in targets if isinstance(t, dict)]
            if isinstance(objects, list) and data.draw(st.booleans(), label="top-level"):
                dicts = [t for t in objects if isinstance(t, dict)]
            if dicts:
                target = data.draw(st.sampled_from(dicts), label="target")
                field = data.draw(st.sampled_from(FIELDS), label="field")
                values = version_strings | any_value if "version" in field else any_value
                target[field] = data.draw(values, label="value")
        elif op in ("delete", "replace"):
            target = data.draw(st.sampled_from(targets), label="target")
            keys = list(target) if isinstance(target, dict) else list(range(len(target)))
            if not keys:
                continue
            key = data.draw(st.sampled_from(keys), label="key")
            if op == "delete":
                del target[key]
            else:
                target[key] = data.draw(any_value, label="value")
    if data.draw(st.integers(0, 40), label="replace-root") == 0:
        root = data.draw(any_value, label="root")
    return root


def _doc(data: Any, name: str = NAME) -> RawDocument:
    return RawDocument(path=f"/in/{name}", sha256="0" * 64, data=data)


def _check(bundle: AttackBundle, source: list[Any]) -> None:
    """Invariants of any bundle the loader accepts."""
    ids = [o.stix_id for o in bundle.objects] + [r.stix_id for r in bundle.relationships]
    assert len(ids) == len(set(ids)) == len(source)
    assert bundle.domain in ("enterprise-attack", "mobile-attack", "ics-attack")
    assert bundle.version
    assert sum(bundle.counts().values()) == len(source)


def _start() -> dict[str, Any]:
    bundle = small_bundle()
    bundle["objects"].append(collection("18.1"))
    return bundle


@PROPERTY
@given(data=st.data(), with_collection=st.booleans())
def test_mutated_bundles_give_a_bundle_or_a_defensemap_error(
    data: st.DataObject, with_collection: bool
) -> None:
    mutated = _mutate(data, _start() if with_collection else small_bundle())
    try:
        bundle = parse_bundle(_doc(mutated))
    except DefensemapError as error:
        text = str(error)
        assert text.startswith(f"/in/{NAME}"), text
        assert error.hint
        return
    _check(bundle, mutated["objects"])


@PROPERTY
@given(
    spec_versions=st.lists(st.none() | version_strings, min_size=6, max_size=6),
    release=version_strings.filter(bool),
)
def test_any_version_strings_parse(spec_versions: list[str | None], release: str) -> None:
    """Version fields are free text to STIX; odd ones are kept, never a crash."""
    bundle = _start()
    for obj, version in zip(bundle["objects"], spec_versions, strict=True):
        if version is not None:
            obj["x_mitre_attack_spec_version"] = version
    bundle["objects"][-1]["x_mitre_version"] = release
    parsed = parse_bundle(_doc(bundle))
    assert parsed.version == release
    declared = {obj.get("x_mitre_attack_spec_version") for obj in bundle["objects"]}
    assert parsed.attack_spec_version in declared


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


@settings(PROPERTY, max_examples=40)
@given(data=st.data())
def test_every_accepted_bundle_can_be_stored(data: st.DataObject, scratch: Path) -> None:
    """What the loader accepts, the store accepts too (no crash between parse and ingest)."""
    mutated = _mutate(data, _start())
    try:
        bundle = parse_bundle(_doc(mutated))
    except DefensemapError:
        return
    path = scratch / f"{hashlib.sha256(repr(mutated).encode()).hexdigest()}.sqlite"
    store = open_store(path, write=True)
    try:
        (outcome,) = ingest_attack(store, [bundle])
        assert outcome.status == "imported"
        (release,) = list_releases(store)
        assert (release.domain, release.version) == (bundle.domain, bundle.version)
        assert sum(release.counts.values()) == len(mutated["objects"])
    finally:
        store.close()
        path.unlink()


# --- round trip ------------------------------------------------------------------------------

extra_fields = st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10).map(
        lambda k: f"x_test_{k}"
    ),
    json_values,
    max_size=3,
)


@st.composite
def valid_bundles(draw: st.DrawFn) -> dict[str, Any]:
    """A valid bundle: a matrix, 1-8 techniques with arbitrary text and extra fields, and
    relationships between them; sometimes STIX 2.1 with a collection."""
    count = draw(st.integers(1, 8))
    uuids = draw(st.lists(st.uuids(), min_size=count + 12, max_size=count + 12, unique=True))
    objects: list[dict[str, Any]] = [copy.deepcopy(small_bundle()["objects"][0])]
    techniques = []
    for index in range(count):
        technique = {
            "type": "attack-pattern",
            "id": f"attack-pattern--{uuids[index]}",
            "name": draw(st.text(max_size=30)),
            "description": draw(st.text(max_size=80)),
            "revoked": draw(st.booleans()),
            "x_mitre_deprecated": draw(st.booleans()),
            "x_mitre_platforms": draw(st.lists(st.text(max_size=10), max_size=3)),
            "kill_chain_phases": [
                {"kill_chain_name": "mitre-attack", "phase_name": draw(st.text(max_size=10))}
            ],
            "external_references": [
                {"source_name": "mitre-attack", "external_id": f"T{1000 + index}"},
                {"source_name": draw(st.text(max_size=10)), "description": draw(st.text())},
            ],
            **draw(extra_fields),
        }
        techniques.append(technique["id"])
        objects.append(technique)
    pairs = draw(
        st.lists(st.tuples(st.sampled_from(techniques), st.sampled_from(techniques)), max_size=10)
    )
    for (source, target), uuid in zip(pairs, uuids[count:], strict=False):
        objects.append(
            {
                "type": "relationship",
                "id": f"relationship--{uuid}",
                "relationship_type": draw(st.sampled_from(["uses", "subtechnique-of", "x"])),
                "source_ref": source,
                "target_ref": target,
                **draw(extra_fields),
            }
        )
    bundle: dict[str, Any] = {"type": "bundle", "id": f"bundle--{uuids[-1]}"}
    if draw(st.booleans()):
        objects.append(collection(draw(st.sampled_from(["15.1", "16.1", "18.1"]))))
    else:
        bundle["spec_version"] = "2.0"
    bundle["objects"] = draw(st.permutations(objects))
    return bundle


@PROPERTY
@given(bundle=valid_bundles())
def test_valid_bundles_round_trip(bundle: dict[str, Any]) -> None:
    original = copy.deepcopy(bundle)
    parsed = parse_bundle(_doc(bundle))
    assert bundle == original, "the loader must not modify its input"
    by_id: dict[str, dict[str, Any]] = {o.stix_id: o.raw for o in parsed.objects}
    by_id.update((r.stix_id, r.raw) for r in parsed.relationships)
    assert len(by_id) == len(original["objects"])
    for obj in original["objects"]:
        assert by_id[obj["id"]] == obj
    for technique in (o for o in parsed.objects if o.type == "attack-pattern"):
        raw = technique.raw
        assert (technique.name, technique.description) == (raw["name"], raw["description"])
        assert (technique.revoked, technique.deprecated) == (
            raw["revoked"],
            raw["x_mitre_deprecated"],
        )
        assert technique.attack_id == raw["external_references"][0]["external_id"]
        assert technique.kind == "technique"
    for rel in parsed.relationships:
        assert (rel.source_ref, rel.target_ref) == (rel.raw["source_ref"], rel.raw["target_ref"])
    assert parsed.domain == "enterprise-attack"
    has_collection = any(o["type"] == "x-mitre-collection" for o in original["objects"])
    assert parsed.spec_version == ("2.1" if has_collection else "2.0")
    assert parsed.version == (
        next(o["x_mitre_version"] for o in original["objects"] if o["type"] == "x-mitre-collection")
        if has_collection
        else "99.1"
    )


@settings(PROPERTY, max_examples=30)
@given(bundle=valid_bundles(), packed=st.booleans())
def test_valid_bundles_round_trip_through_file_and_store(
    bundle: dict[str, Any], packed: bool, scratch: Path
) -> None:
    """JSON bytes -> loader -> store -> read back: every object's raw JSON is unchanged."""
    path = scratch / (f"{NAME}.gz" if packed else NAME)
    content = orjson.dumps(bundle)
    path.write_bytes(gzip.compress(content) if packed else content)
    parsed = load_bundle(path)
    assert parsed.sha256 == hashlib.sha256(content).hexdigest()
    db = scratch / "round-trip.sqlite"
    store = open_store(db, write=True)
    try:
        ingest_attack(store, [parsed])
        (release,) = list_releases(store)
        ids = [o["id"] for o in bundle["objects"]]
        stored = {k: v.raw for k, v in get_objects(store, release.id, ids).items()}
        stored.update((r.stix_id, r.raw) for r in relationships(store, release.id))
    finally:
        store.close()
        db.unlink()
    assert stored == {o["id"]: o for o in bundle["objects"]}


# --- arbitrary bytes ---------------------------------------------------------------------------


@st.composite
def file_contents(draw: st.DrawFn) -> bytes:
    """Random bytes, near-JSON, JSON, and gzip archives of those (whole, cut or corrupted)."""
    text = draw(json_values.map(repr).map(str.encode))
    plain = draw(
        st.binary(max_size=300)
        | st.just(text)
        | json_values.map(orjson.dumps)
        | st.binary(max_size=40).map(lambda b: b'{"type": "bundle", "objects": [' + b)
    )
    kind = draw(st.sampled_from(["plain", "gzip", "cut-gzip", "flipped-gzip", "magic"]))
    if kind == "plain":
        return plain
    if kind == "magic":
        return GZIP_MAGIC + plain
    packed = gzip.compress(plain)
    if kind == "cut-gzip":
        return packed[: draw(st.integers(0, len(packed) - 1))]
    if kind == "flipped-gzip":
        at = draw(st.integers(0, len(packed) - 1))
        flipped = bytearray(packed)
        flipped[at] ^= draw(st.integers(1, 255))
        return bytes(flipped)
    return packed


@PROPERTY
@given(content=file_contents(), limit=st.sampled_from([None, 0, 64, 1 << 20]))
def test_read_json_on_arbitrary_bytes(content: bytes, limit: int | None, scratch: Path) -> None:
    path = scratch / "input.json"
    path.write_bytes(content)
    try:
        doc = read_json(path, limit)
    except DefensemapError as error:
        assert str(error).startswith(str(path)), str(error)
        return
    assert doc.path == str(path)
    assert len(doc.sha256) == 64
