"""Bad ATT&CK input gets one precise, typed error: which file, where in it, what, what to do."""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.attack_bundles import (
    COLLECTION_ID,
    MATRIX,
    RELATIONSHIP,
    SUBTECHNIQUE,
    TACTIC,
    TECHNIQUE,
    TECHNIQUE_ID,
    collection,
    encode,
    small_bundle,
    write_bundle,
)
from tests.file_cases import mutated_case, raw_case

from defensemap.errors import DefensemapError, ParseError, SchemaError, SourceError
from defensemap.model.attack import AttackBundle
from defensemap.sources.attack_stix import load_bundle
from defensemap.sources.files import MAX_BYTES_ENV, read_bytes

NAME = "enterprise-attack-99.1.json"


def _mutated(change: Callable[[dict[str, Any]], object]) -> Callable[[Path], Path]:
    return mutated_case(small_bundle, write_bundle, change, NAME)


def _raw(content: bytes, name: str = NAME) -> Callable[[Path], Path]:
    return raw_case(content, name)


def _set(index: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(bundle: dict[str, Any]) -> None:
        bundle["objects"][index][key] = value

    return change


def _delete(index: int, key: str) -> Callable[[dict[str, Any]], None]:
    def change(bundle: dict[str, Any]) -> None:
        del bundle["objects"][index][key]

    return change


def _truncated_gzip(tmp_path: Path) -> Path:
    data = gzip.compress(encode(small_bundle()))
    path = tmp_path / f"{NAME}.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


def _corrupt_gzip(tmp_path: Path) -> Path:
    data = bytearray(gzip.compress(encode(small_bundle())))
    data[len(data) // 2 :] = b"\x00" * (len(data) - len(data) // 2)
    path = tmp_path / f"{NAME}.gz"
    path.write_bytes(bytes(data))
    return path


def _gzip_of(content: bytes) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / f"{NAME}.gz"
        path.write_bytes(gzip.compress(content))
        return path

    return make


def _not_json(tmp_path: Path) -> Path:
    path = tmp_path / NAME
    path.write_text('{\n  "type": "bundle",\n  "objects": [}\n', encoding="utf-8")
    return path


def _duplicate_id(bundle: dict[str, Any]) -> None:
    bundle["objects"][SUBTECHNIQUE]["id"] = TECHNIQUE_ID


def _no_source_name(bundle: dict[str, Any]) -> None:
    del bundle["objects"][TECHNIQUE]["external_references"][0]["source_name"]


def _no_domain(bundle: dict[str, Any]) -> None:
    del bundle["objects"][MATRIX]
    for obj in bundle["objects"]:
        obj.pop("x_mitre_domains", None)


def _no_version(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "bundle.json", small_bundle())


def _oversized(tmp_path: Path) -> Path:
    """Valid JSON, 1.5 MiB of it (the limit is set to 1 MiB)."""
    path = tmp_path / NAME
    path.write_bytes(encode(small_bundle()) + b" " * (3 << 19))
    return path


def _gzip_bomb(tmp_path: Path) -> Path:
    """A few KiB on disk that inflate to 64 MiB (the limit is set to 1 MiB)."""
    path = tmp_path / f"{NAME}.gz"
    with gzip.open(path, "wb", compresslevel=9) as archive:
        archive.write(encode(small_bundle()))
        block = b" " * (1 << 20)
        for _ in range(64):
            archive.write(block)
    assert path.stat().st_size < 256 << 10
    return path


def _directory(tmp_path: Path) -> Path:
    path = tmp_path / NAME
    path.mkdir()
    return path


@dataclass(frozen=True)
class Case:
    make: Callable[[Path], Path]
    error: type[DefensemapError]
    where: str  # expected right after the path in str(error): ":line:col", "#/pointer" or ""
    message: str  # a fragment of the message
    object_id: str | None = None
    hint: str | None = None  # a fragment of the hint (every error must have one)
    small_limit: bool = False


CASES: dict[str, Case] = {
    "not-json": Case(_not_json, ParseError, ":3:", "not valid JSON"),
    "empty-file": Case(_raw(b""), ParseError, ":1:1", "not valid JSON"),
    "binary-garbage": Case(_raw(b"\x00\xff\xfe garbage"), ParseError, ":1:", "not valid JSON"),
    "invalid-utf8": Case(_raw(b'{"type": "bun\xffdle"}'), ParseError, ":1:", "not valid JSON"),
    "trailing-content": Case(
        _raw(encode(small_bundle()) + b"\n{}"), ParseError, ":", "not valid JSON"
    ),
    "too-deep": Case(_raw(b"[" * 5000 + b"]" * 5000), ParseError, ":1:", "not valid JSON"),
    "truncated-gzip": Case(_truncated_gzip, ParseError, "", "truncated or corrupt"),
    "corrupt-gzip": Case(_corrupt_gzip, ParseError, "", "truncated or corrupt"),
    "gzip-magic-only": Case(_raw(b"\x1f\x8b", f"{NAME}.gz"), ParseError, "", "truncated"),
    "gzip-of-non-json": Case(_gzip_of(b"hello, world\n"), ParseError, ":1:", "not valid JSON"),
    "gzip-of-empty": Case(_gzip_of(b""), ParseError, ":1:1", "not valid JSON"),
    "json-array": Case(_raw(b"[1, 2, 3]"), SchemaError, "#/", "not a STIX bundle"),
    "json-scalar": Case(_raw(b'"bundle"'), SchemaError, "#/", "not a STIX bundle"),
    "not-type-bundle": Case(
        _mutated(lambda b: b.update(type="x-mitre-collection")),
        SchemaError,
        "#/",
        "not a STIX bundle",
    ),
    "type-missing": Case(_mutated(lambda b: b.pop("type")), SchemaError, "#/", "STIX bundle"),
    "objects-missing": Case(
        _mutated(lambda b: b.pop("objects")), SchemaError, "#/objects", "no 'objects' list"
    ),
    "objects-not-list": Case(
        _mutated(lambda b: b.update(objects={"a": 1})),
        SchemaError,
        "#/objects",
        "no 'objects' list",
    ),
    "objects-empty": Case(
        _mutated(lambda b: b.update(objects=[])), SchemaError, "#/objects", "no objects"
    ),
    "object-not-dict": Case(
        _mutated(lambda b: b["objects"].insert(2, "attack-pattern")),
        SchemaError,
        "#/objects/2",
        "expected an object, found str",
    ),
    "object-null": Case(
        _mutated(lambda b: b["objects"].append(None)),
        SchemaError,
        "#/objects/5",
        "expected an object, found NoneType",
    ),
    "type-missing-on-object": Case(
        _mutated(_delete(TACTIC, "type")),
        SchemaError,
        "#/objects/1/type",
        "required field 'type' is missing",
    ),
    "id-missing": Case(
        _mutated(_delete(TECHNIQUE, "id")),
        SchemaError,
        "#/objects/2/id",
        "required field 'id' is missing",
    ),
    "id-not-string": Case(
        _mutated(_set(TECHNIQUE, "id", 12)), SchemaError, "#/objects/2/id", "field 'id'"
    ),
    "id-malformed": Case(
        _mutated(_set(TECHNIQUE, "id", "attack-pattern--nope")),
        SchemaError,
        "#/objects/2/id",
        "malformed STIX id",
        object_id="attack-pattern--nope",
    ),
    "id-wrong-type-prefix": Case(
        _mutated(_set(TECHNIQUE, "id", TECHNIQUE_ID.replace("attack-pattern", "tool"))),
        SchemaError,
        "#/objects/2/id",
        "malformed STIX id",
    ),
    "id-trailing-newline": Case(
        _mutated(_set(TECHNIQUE, "id", TECHNIQUE_ID + "\n")),
        SchemaError,
        "#/objects/2/id",
        "malformed STIX id",
    ),
    "id-duplicate": Case(
        _mutated(_duplicate_id),
        SchemaError,
        "#/objects/3/id",
        f"duplicate id {TECHNIQUE_ID}",
        object_id=TECHNIQUE_ID,
    ),
    "name-int": Case(
        _mutated(_set(TECHNIQUE, "name", 42)),
        SchemaError,
        "#/objects/2/name",
        "field 'name': input should be a valid string",
        object_id=TECHNIQUE_ID,
    ),
    "revoked-string": Case(
        _mutated(_set(TECHNIQUE, "revoked", "yes")),
        SchemaError,
        "#/objects/2/revoked",
        "field 'revoked': input should be a valid boolean",
        object_id=TECHNIQUE_ID,
    ),
    "platforms-string": Case(
        _mutated(_set(TECHNIQUE, "x_mitre_platforms", "Windows")),
        SchemaError,
        "#/objects/2/x_mitre_platforms",
        "input should be a valid list",
        object_id=TECHNIQUE_ID,
    ),
    "platform-item-int": Case(
        _mutated(_set(SUBTECHNIQUE, "x_mitre_platforms", ["Windows", 7])),
        SchemaError,
        "#/objects/3/x_mitre_platforms/1",
        "valid string",
    ),
    "external-ref-no-source-name": Case(
        _mutated(_no_source_name),
        SchemaError,
        "#/objects/2/external_references/0/source_name",
        "required field 'source_name' is missing",
        object_id=TECHNIQUE_ID,
    ),
    "external-refs-not-list": Case(
        _mutated(_set(TECHNIQUE, "external_references", {"source_name": "mitre-attack"})),
        SchemaError,
        "#/objects/2/external_references",
        "valid list",
    ),
    "kill-chain-phase-int": Case(
        _mutated(_set(TECHNIQUE, "kill_chain_phases", [{"kill_chain_name": "x", "phase_name": 3}])),
        SchemaError,
        "#/objects/2/kill_chain_phases/0/phase_name",
        "valid string",
    ),
    "relationship-no-source-ref": Case(
        _mutated(_delete(RELATIONSHIP, "source_ref")),
        SchemaError,
        "#/objects/4/source_ref",
        "required field 'source_ref' is missing",
    ),
    "relationship-no-type": Case(
        _mutated(_delete(RELATIONSHIP, "relationship_type")),
        SchemaError,
        "#/objects/4/relationship_type",
        "required field 'relationship_type' is missing",
    ),
    "no-domain": Case(_mutated(_no_domain), SchemaError, "#/objects", "ATT&CK domain"),
    "no-version": Case(_no_version, SchemaError, "", "ATT&CK version", hint="--attack-version"),
    "oversized-file": Case(
        _oversized,
        ParseError,
        "",
        "larger than the 1 MiB limit",
        hint=MAX_BYTES_ENV,
        small_limit=True,
    ),
    "gzip-bomb": Case(
        _gzip_bomb,
        ParseError,
        "",
        "exceeds the 1 MiB limit",
        hint=MAX_BYTES_ENV,
        small_limit=True,
    ),
    "file-missing": Case(lambda tmp: tmp / NAME, SourceError, "", "file not found"),
    "directory": Case(_directory, SourceError, "", "directory"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_gets_a_precise_error(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.small_limit:
        monkeypatch.setenv(MAX_BYTES_ENV, "1")
    path = case.make(tmp_path)

    with pytest.raises(DefensemapError) as caught:
        load_bundle(path)

    error = caught.value
    text = str(error)
    assert type(error) is case.error, text
    assert text.startswith(f"{path}{case.where}"), text
    assert case.message in error.message, text
    assert error.location is not None
    assert error.location.path == str(path)
    if case.where.startswith("#"):
        assert error.location.pointer == case.where[1:].split(" ")[0]
    if case.where.startswith(":"):
        assert error.location.line is not None
        assert error.location.column is not None
    if case.object_id:
        assert error.location.object_id == case.object_id
        assert f"({case.object_id})" in text
    assert error.hint, f"no hint saying what to do: {text}"
    if case.hint:
        assert case.hint in error.hint
    assert "\n" not in text.replace(TECHNIQUE_ID + "\n", "")
    assert error.exit_code == 2
    assert error.to_dict()["location"]["path"] == str(path)  # type: ignore[index]


def test_not_json_names_the_line_and_column(tmp_path: Path) -> None:
    path = _not_json(tmp_path)
    with pytest.raises(ParseError) as caught:
        load_bundle(path)
    assert caught.value.location is not None
    assert (caught.value.location.line, caught.value.location.column) == (3, 15)
    assert str(caught.value).startswith(f"{path}:3:15: not valid JSON")


def test_the_first_bad_object_is_reported(tmp_path: Path) -> None:
    bundle = small_bundle()
    bundle["objects"][TACTIC]["name"] = 1
    bundle["objects"][RELATIONSHIP]["source_ref"] = 2
    with pytest.raises(SchemaError, match=r"#/objects/1/name"):
        load_bundle(write_bundle(tmp_path / NAME, bundle))


def test_limit_only_applies_above_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle just under the limit loads, plain or gzip; non-digit settings are ignored."""
    monkeypatch.setenv(MAX_BYTES_ENV, "1")
    content = encode(small_bundle())
    padded = content + b" " * ((1 << 20) - len(content))
    plain = tmp_path / NAME
    plain.write_bytes(padded)
    packed = tmp_path / "enterprise-attack-99.2.json.gz"
    packed.write_bytes(gzip.compress(padded))
    assert load_bundle(plain).version == "99.1"
    assert load_bundle(packed).version == "99.2"
    plain.write_bytes(padded + b" " * 100)
    for ignored in ("lots", "-1", "²"):
        monkeypatch.setenv(MAX_BYTES_ENV, ignored)
        assert load_bundle(plain).version == "99.1"


def _fifo(path: Path, content: bytes) -> threading.Thread:
    """Make ``path`` a named pipe and feed it ``content`` from a thread (as ``<(curl ..)``)."""
    os.mkfifo(path)

    def feed() -> None:
        try:
            with path.open("wb") as pipe:
                pipe.write(content)
        except BrokenPipeError:  # the reader stopped early, as it should past the limit
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    return writer


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")


@needs_fifo
def test_endless_stream_is_cut_at_the_limit(tmp_path: Path) -> None:
    """A pipe or device reports size 0; the read itself must stop at the limit."""
    path = tmp_path / NAME
    writer = _fifo(path, b" " * (8 << 20))
    with pytest.raises(ParseError, match="exceeds the 1 MiB limit") as caught:
        read_bytes(path, limit=1 << 20)
    writer.join(timeout=5)
    assert str(caught.value).startswith(f"{path}: ")
    assert caught.value.hint is not None
    assert MAX_BYTES_ENV in caught.value.hint


@needs_fifo
@pytest.mark.parametrize("packed", [False, True], ids=["json", "gzip"])
def test_bundle_from_a_pipe_loads(tmp_path: Path, packed: bool) -> None:
    """``import attack <(curl ...)`` hands over a pipe, which cannot seek."""
    path = tmp_path / NAME
    content = encode(small_bundle())
    writer = _fifo(path, gzip.compress(content) if packed else content)
    bundle = load_bundle(path)
    writer.join(timeout=5)
    assert bundle.version == "99.1"
    assert len(bundle.objects) == 4


# --- what a valid bundle yields --------------------------------------------------------------


def _stix21(version: str) -> dict[str, Any]:
    bundle = small_bundle()
    del bundle["spec_version"]
    for obj in bundle["objects"]:
        obj["spec_version"] = "2.1"
    bundle["objects"].insert(0, collection(version))
    return bundle


def test_stix21_version_comes_from_the_collection(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "bundle.json", _stix21("17.0"))
    bundle = load_bundle(path)
    assert isinstance(bundle, AttackBundle)
    assert (bundle.domain, bundle.version, bundle.spec_version) == (
        "enterprise-attack",
        "17.0",
        "2.1",
    )
    assert bundle.attack_spec_version == "3.2.0"
    assert COLLECTION_ID in {o.stix_id for o in bundle.objects}


def test_collection_beats_the_file_name_and_the_option_beats_both(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / NAME, _stix21("17.0"))
    assert load_bundle(path).version == "17.0"
    assert load_bundle(path, attack_version="16.1").version == "16.1"
    plain = write_bundle(tmp_path / "enterprise-attack-99.2.json", small_bundle())
    assert load_bundle(plain).version == "99.2"
    assert load_bundle(plain, attack_version="5.5").version == "5.5"
    nameless = write_bundle(tmp_path / "bundle.json", small_bundle())
    assert load_bundle(nameless, attack_version="15.1").version == "15.1"


def test_gzip_bundle_loads_like_plain(tmp_path: Path) -> None:
    plain = load_bundle(write_bundle(tmp_path / NAME, small_bundle()))
    packed = load_bundle(write_bundle(tmp_path / "gz" / f"{NAME}.gz", small_bundle()))
    assert packed.version == plain.version == "99.1"
    assert packed.sha256 == plain.sha256  # the digest is of the JSON, not of the archive
    assert [o.raw for o in packed.objects] == [o.raw for o in plain.objects]


def test_small_bundle_parses_completely(tmp_path: Path) -> None:
    bundle = load_bundle(write_bundle(tmp_path / NAME, small_bundle()))
    assert (bundle.domain, bundle.version, bundle.spec_version) == (
        "enterprise-attack",
        "99.1",
        "2.0",
    )
    kinds = {o.attack_id or o.stix_id: o.kind for o in bundle.objects}
    assert kinds == {
        "enterprise-attack": "matrix",
        "TA0008": "tactic",
        "T1021": "technique",
        "T1021.001": "technique",
    }
    assert [r.relationship_type for r in bundle.relationships] == ["subtechnique-of"]
    assert bundle.warnings == []
    assert bundle.counts() == {
        "attack-pattern": 2,
        "relationship": 1,
        "x-mitre-matrix": 1,
        "x-mitre-tactic": 1,
    }


def test_unknown_types_are_kept_with_a_warning(tmp_path: Path) -> None:
    data = small_bundle()
    custom = {
        "type": "x-acme-widget",
        "id": "x-acme-widget--6d6a4a44-4b8b-4a3c-9a6e-0c7d7f6f3b0b",
        "name": "Widget",
        "x_acme_payload": {"nested": [1, 2, {"deep": None}]},
    }
    data["objects"].extend([custom, dict(custom, id=custom["id"].replace("6d6a", "7d6a"))])
    bundle = load_bundle(write_bundle(tmp_path / NAME, data))
    kept = [o for o in bundle.objects if o.type == "x-acme-widget"]
    assert len(kept) == 2
    assert {o.kind for o in kept} == {"unknown"}
    assert kept[0].raw == custom
    assert bundle.warnings == ["kept 2 object(s) of unknown type 'x-acme-widget' as raw JSON"]


def test_dangling_relationship_is_a_warning_not_an_error(tmp_path: Path) -> None:
    data = small_bundle()
    data["objects"][RELATIONSHIP]["target_ref"] = "attack-pattern--ffffffff-0000-0000-0000-0000"
    bundle = load_bundle(write_bundle(tmp_path / NAME, data))
    assert len(bundle.relationships) == 1
    assert bundle.warnings == ["1 relationship(s) point to objects missing from the bundle"]


def test_odd_version_strings_do_not_crash(tmp_path: Path) -> None:
    """Versions are sorted numerically; digits that ``int`` refuses must not raise."""
    data = _stix21("18.¹")
    data["objects"][0]["x_mitre_attack_spec_version"] = "3.²"
    data["objects"][1]["x_mitre_attack_spec_version"] = "3.1.0"
    bundle = load_bundle(write_bundle(tmp_path / NAME, data))
    assert bundle.version == "18.¹"
    assert bundle.attack_spec_version == "3.1.0"
