"""Our pydantic models for Mappings Explorer files agree with the unified schema file
(../shared/data/mappings/schema/mapex-unified-data-schema.json): on every real file, and on
documents mutated at random, where jsonschema's verdict must equal ours.

Where we are deliberately stricter than the schema, the tests say so explicitly:
- the schema requires neither ``metadata`` nor ``mapping_objects`` at the top level; we do;
- the schema constrains ``mapping_types`` entries through the unanchored pattern ``[a-z]+``, so
  an entry whose key has no lowercase ASCII letter may hold anything; we require every entry to
  be a ``{name, description}`` object;
- the date pattern ``^…$``: JSON Schema regexes follow ECMA-262, where ``$`` matches only at
  the end, but Python's ``re`` (used by jsonschema) also matches before a final newline, so
  jsonschema accepts ``"01/02/2024\\n"``; we (and ECMA-262) do not.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from tests.conftest import MAPPING_SCHEMA, MAPPINGS_DIR, require_shared_data
from tests.mapping_docs import small_mapping, valid_mappings

from defensemap.errors import SchemaError
from defensemap.model.mappings import MappingFile
from defensemap.sources.files import RawDocument
from defensemap.sources.mappings import (
    MappingObject,
    Metadata,
    load_mapping_file,
    parse_mapping_file,
)
from defensemap.store.db import open_store
from defensemap.store.mappings import ingest_mappings, list_sets

FILES = sorted(MAPPINGS_DIR.rglob("*.json")) if MAPPINGS_DIR.is_dir() else []
PROPERTY = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    require_shared_data()
    loaded: dict[str, Any] = json.loads(MAPPING_SCHEMA.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _doc(data: Any) -> RawDocument:
    return RawDocument(path="mutated.json", sha256="0" * 64, data=data)


def _ours(data: Any) -> MappingFile | None:
    """Our verdict: the parsed file, or None when we raise SchemaError (anything else fails)."""
    try:
        return parse_mapping_file(_doc(data))
    except SchemaError:
        return None


# --- the models mirror the schema's field lists ------------------------------------------------


def test_models_have_exactly_the_schema_fields(schema: dict[str, Any]) -> None:
    props = schema["properties"]
    assert set(props) == {"metadata", "mapping_objects"}
    assert set(Metadata.model_fields) == set(props["metadata"]["properties"])
    assert set(MappingObject.model_fields) == set(props["mapping_objects"]["items"]["properties"])
    required = {n for n, f in Metadata.model_fields.items() if f.is_required()}
    assert required == set(props["metadata"]["required"])
    required = {n for n, f in MappingObject.model_fields.items() if f.is_required()}
    assert required == set(props["mapping_objects"]["items"]["required"])


# --- every real file ---------------------------------------------------------------------------


def test_there_are_33_real_files() -> None:
    require_shared_data()
    assert len(FILES) == 33


@pytest.mark.parametrize("path", FILES, ids=[p.name.removesuffix(".json") for p in FILES])
def test_every_real_file_validates_with_the_schema_and_with_us(
    validator: Draft202012Validator, path: Path
) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []
    parsed = load_mapping_file(path)
    assert parsed.rows_in_file == len(data["mapping_objects"])


# --- a small valid document (our own content, tests/mapping_docs.py) ---------------------------


def valid_document() -> dict[str, Any]:
    return small_mapping()


def test_the_valid_document_is_valid_for_both(validator: Draft202012Validator) -> None:
    data = valid_document()
    assert validator.is_valid(data)
    parsed = _ours(data)
    assert parsed is not None
    assert (parsed.rows_in_file, len(parsed.rows), parsed.duplicate_rows) == (4, 3, 1)
    assert parsed.rows[0].occurrences == 2
    assert parsed.rows[0].references == ["https://example.org/a", "https://example.org/b"]
    assert parsed.rows[2].mapping_type == "non_mappable"
    assert parsed.info.domain == "enterprise-attack"


# --- mutations -------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
# Values on the edges of the schema's rules: every enum member and near misses, valid and
# invalid dates, each JSON type.
EDGE_STRINGS = [
    "",
    "x",
    "01/02/2024",
    "1/2/2024",
    "2024-01-02",
    "01/02/24",
    "01.02.2024",
    "001/02/2024",
    "xx01/02/2024",
    "01/02/2024x",
    "01/02/2024\n",
    "٠١/٠٢/٢٠٢٤",
    "enterprise",
    "Enterprise",
    "mobile",
    "ics",
    "pre",
    "FRAMEWORK_VERSION",
    "ACCESS_DATE",
    "framework_version",
    "complete",
    "in_progress",
    "non_mappable",
    "Complete",
    "protect",
    "detect",
    "respond",
    "Protect",
    "minimal",
    "partial",
    "significant",
    "high",
    "protects",
    "T1021.007",
]
EDGE_VALUES: list[Any] = [
    *EDGE_STRINGS,
    None,
    True,
    0,
    1.5,
    [],
    ["x"],
    [" x "],
    [1],
    [None],
    {},
    {"name": "n", "description": "d"},
    {"x": 1},
]
# (copied: the mutations edit containers in place)
edge_values = st.sampled_from(EDGE_VALUES).map(copy.deepcopy)
values = edge_values | json_values
mapping_type_entries = st.fixed_dictionaries(
    {"name": st.text(max_size=4), "description": st.text(max_size=4)}
)

METADATA_FIELDS = list(Metadata.model_fields)
OBJECT_FIELDS = list(MappingObject.model_fields)
# Keys: the schema's own field names (to hit each rule), and others (unknown fields).
keys = st.sampled_from([*METADATA_FIELDS, *OBJECT_FIELDS, "name", "description"]) | st.text(
    max_size=6
)


def _containers(doc: Any) -> list[Any]:
    """Every dict and list in the document, outermost first."""
    found: list[Any] = []
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict | list):
            found.append(item)
            stack.extend(item.values() if isinstance(item, dict) else item)
    return found


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """The valid document after 1-3 edits: set a field (existing or new, any value, null),
    delete one, replace a whole part, or swap a list item."""
    doc: Any = valid_document()
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(doc, dict | list) or draw(st.integers(0, 30)) == 0:
            doc = draw(values)  # the whole document replaced
            continue
        target = draw(st.sampled_from(_containers(doc)))
        action = draw(st.sampled_from(["set", "set", "set", "delete", "mapping_type", "item"]))
        if isinstance(target, list):
            if target and action == "delete":
                del target[draw(st.integers(0, len(target) - 1))]
            elif target and action != "item":
                target[draw(st.integers(0, len(target) - 1))] = draw(values)
            else:
                target.append(
                    draw(values | st.just(copy.deepcopy(valid_document()["mapping_objects"][1])))
                )
        elif action == "delete" and target:
            del target[draw(st.sampled_from(sorted(target)))]
        elif action == "mapping_type":
            target[draw(st.text(max_size=6))] = draw(mapping_type_entries | values)
        else:
            existing = sorted(target)
            key = draw(st.sampled_from(existing) | keys if existing else keys)
            target[key] = draw(edge_values if draw(st.booleans()) else values)
    return doc


def _loose_under_python_re(value: Any) -> bool:
    """A date jsonschema accepts only because Python's ``$`` matches before a final newline."""
    return (
        isinstance(value, str)
        and value.endswith("\n")
        and re.fullmatch(r"[0-9]{2}/[0-9]{2}/[0-9]{4}", value[:-1]) is not None
    )


def _where_we_are_stricter(doc: Any) -> list[str]:
    """The reasons (see the module docstring) our verdict may be stricter on ``doc``."""
    if not isinstance(doc, dict):
        return []
    reasons = []
    if "metadata" not in doc or "mapping_objects" not in doc:
        reasons.append("top-level metadata/mapping_objects are required by us only")
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        types = meta.get("mapping_types")
        if isinstance(types, dict) and any(not re.search("[a-z]", k) for k in types):
            reasons.append("mapping_types key the schema's pattern does not constrain")
        if any(_loose_under_python_re(meta.get(k)) for k in ("creation_date", "last_update")):
            reasons.append("date ending in a newline")
    return reasons


@PROPERTY
@given(doc=mutated_documents())
def test_our_verdict_equals_the_schema_verdict(validator: Draft202012Validator, doc: Any) -> None:
    before = copy.deepcopy(doc)
    ours = _ours(doc) is not None
    assert doc == before, "the parser must not modify its input"
    theirs = validator.is_valid(doc)
    event(f"schema says {'valid' if theirs else 'invalid'}")
    if _where_we_are_stricter(doc):
        assert not (ours and not theirs), "we accepted what the schema rejects"
    else:
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]
        assert ours == theirs, f"ours={ours} schema={theirs} {errors[:3]}"


@PROPERTY
@given(document=valid_mappings())
def test_random_valid_documents_are_valid_for_both(
    validator: Draft202012Validator, document: dict[str, Any]
) -> None:
    """Arbitrary content in every field the schema allows (the generator checked by the
    schema itself): accepted by us too."""
    assert validator.is_valid(document)
    assert _ours(document) is not None


@settings(PROPERTY, max_examples=40)
@given(doc=mutated_documents())
def test_every_accepted_document_can_be_stored(doc: Any, scratch: Path) -> None:
    """What the loader accepts, the store accepts too (no crash between parse and ingest)."""
    parsed = _ours(doc)
    if parsed is None:
        return
    path = scratch / "accepted.sqlite"
    store = open_store(path, write=True)
    try:
        (outcome,) = ingest_mappings(store, [parsed])
        assert outcome.status == "imported"
        (item,) = list_sets(store)
        assert item.rows_stored == len(parsed.rows)
    finally:
        store.close()
        path.unlink()


MISSING = object()
LOCATIONS = {
    "top": ["metadata", "mapping_objects", "extra"],
    "metadata": [*METADATA_FIELDS, "extra"],
    "mapping_type": ["name", "description", "extra"],
    "object": [*OBJECT_FIELDS, "extra"],
    "minimal-object": [*OBJECT_FIELDS, "extra"],
}


def _target(doc: dict[str, Any], where: str) -> dict[str, Any]:
    targets: dict[str, Any] = {
        "top": doc,
        "metadata": doc["metadata"],
        "mapping_type": doc["metadata"]["mapping_types"]["protects"],
        "object": doc["mapping_objects"][0],
        "minimal-object": doc["mapping_objects"][1],
    }
    return targets[where]


@pytest.mark.parametrize(
    ("where", "field"), [(w, f) for w, fields in LOCATIONS.items() for f in fields]
)
def test_every_field_with_every_edge_value(
    validator: Draft202012Validator, where: str, field: str
) -> None:
    """Each field, in turn: dropped, null, wrong type, enum member or near miss, good or bad
    date; and metadata fields set on a mapping object and back (unknown there)."""
    mismatches = []
    for value in [MISSING, *EDGE_VALUES]:
        doc = valid_document()
        target = _target(doc, where)
        if value is MISSING:
            target.pop(field, None)
        else:
            target[field] = copy.deepcopy(value)
        ours = _ours(doc) is not None
        theirs = validator.is_valid(doc)
        if _where_we_are_stricter(doc):
            if ours and not theirs:
                mismatches.append((value, ours, theirs))
        elif ours != theirs:
            mismatches.append((value, ours, theirs))
    assert mismatches == []


# --- where we are stricter, explicitly ---------------------------------------------------------


@pytest.mark.parametrize("missing", ["metadata", "mapping_objects", "both"])
def test_we_require_both_top_level_parts(validator: Draft202012Validator, missing: str) -> None:
    doc = valid_document()
    for key in ("metadata", "mapping_objects") if missing == "both" else (missing,):
        del doc[key]
    assert validator.is_valid(doc)
    with pytest.raises(SchemaError, match="expected an object with 'metadata' and"):
        parse_mapping_file(_doc(doc))


@pytest.mark.parametrize("key", ["X", "", "1", "WIN-11"])
def test_we_require_every_mapping_type_to_be_name_and_description(
    validator: Draft202012Validator, key: str
) -> None:
    doc = valid_document()
    doc["metadata"]["mapping_types"][key] = 5
    assert validator.is_valid(doc)
    with pytest.raises(SchemaError) as caught:
        parse_mapping_file(_doc(doc))
    assert caught.value.location is not None
    assert caught.value.location.pointer == f"/metadata/mapping_types/{key}"


@pytest.mark.parametrize("field", ["creation_date", "last_update"])
def test_a_date_with_a_trailing_newline_is_refused(field: str) -> None:
    doc = valid_document()
    doc["metadata"][field] = "01/02/2024\n"
    with pytest.raises(SchemaError) as caught:
        parse_mapping_file(_doc(doc))
    assert caught.value.location is not None
    assert caught.value.location.pointer == f"/metadata/{field}"


def test_the_stricter_cases_are_recognised() -> None:
    """The property test's exemptions fire only for the documented cases."""
    assert _where_we_are_stricter(valid_document()) == []
    doc = valid_document()
    doc["metadata"]["mapping_types"]["Upper"] = 1  # has lowercase letters: constrained
    assert _where_we_are_stricter(doc) == []
    doc["metadata"]["creation_date"] = "01/02/2024 \n"
    assert _where_we_are_stricter(doc) == []
