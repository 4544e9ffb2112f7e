"""A small hand-made Mappings Explorer file (unified format) for tests that must not depend on
../shared data. Its content is made up; only its shape follows the unified schema.

``small_mapping()["mapping_objects"]``: a row with every field (FULL), a minimal row (MINIMAL),
a non-mappable row (NON_MAPPABLE) and an exact copy of the first row (DUPLICATE).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson

FULL, MINIMAL, NON_MAPPABLE, DUPLICATE = range(4)

_FULL_ROW: dict[str, Any] = {
    "author": "A. Tester",
    "author_contact": "tester@example.org",
    "author_organization": "Example Org",
    "attack_object_id": "T1021.007",
    "attack_object_name": "Example Technique",
    "attack_version": "16.1",
    "mapping_framework": "example_fw",
    "mapping_framework_version": "v1",
    "capability_id": "EX-01",
    "capability_description": "Example control",
    "comments": "An example comment.",
    "references": ["https://example.org/a", " https://example.org/b"],
    "mapping_type": "protects",
    "capability_group": "EX",
    "status": "complete",
    "technology_domain": "enterprise",
    "score_category": "protect",
    "score_value": "partial",
    "related_score": "T1021",
}


def small_mapping(
    framework: str = "example_fw",
    version: str = "v1",
    attack_version: str = "16.1",
    domain: str = "enterprise",
    capability_id: str = "EX-01",
) -> dict[str, Any]:
    full = {
        **copy.deepcopy(_FULL_ROW),
        "mapping_framework": framework,
        "mapping_framework_version": version,
        "attack_version": attack_version,
        "technology_domain": domain,
        "capability_id": capability_id,
    }
    return {
        "metadata": {
            "mapping_version": "1.0",
            "attack_version": attack_version,
            "technology_domain": domain,
            "creation_date": "01/02/2024",
            "last_update": "03/04/2025",
            "mapping_framework": framework,
            "mapping_framework_version": version,
            "mapping_framework_version_schema": "FRAMEWORK_VERSION",
            "author": "A. Tester",
            "contact": None,
            "organization": "Example Org",
            "mapping_types": {
                "protects": {"name": "Protects", "description": "Guards against it."},
                "non_mappable": {"name": "Non-mappable", "description": ""},
            },
            "capability_groups": {"EX": "Example group", "OT": "Other group"},
        },
        "mapping_objects": [
            full,
            {"mapping_type": "protects", "capability_group": "OT", "capability_id": "OT-02"},
            {
                "capability_id": None,
                "capability_group": None,
                "mapping_type": None,
                "attack_object_id": "T1002",
                "attack_object_name": "Another Technique",
                "references": None,
                "score_category": None,
                "score_value": None,
                "status": "non_mappable",
            },
            copy.deepcopy(full),
        ],
    }


def write_mapping(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return path


# --- random valid documents (Hypothesis) ----------------------------------------------------------


def valid_mappings() -> Any:
    """A Hypothesis strategy for valid documents with arbitrary content: every optional field
    present or not, nullable ones sometimes null, rows sometimes repeated exactly."""
    from hypothesis import strategies as st

    text = st.text(max_size=12)
    maybe_text = st.none() | text
    date = st.from_regex(r"\A[0-9]{2}/[0-9]{2}/[0-9]{4}\Z")
    optional_meta = {
        "last_update": date,
        "mapping_framework_version_schema": st.sampled_from(["FRAMEWORK_VERSION", "ACCESS_DATE"]),
        "author": maybe_text,
        "contact": maybe_text,
        "organization": maybe_text,
    }
    optional_row = {
        "author": maybe_text,
        "author_contact": maybe_text,
        "author_organization": maybe_text,
        "attack_object_id": maybe_text,
        "attack_object_name": maybe_text,
        "attack_version": text,
        "mapping_framework": text,
        "mapping_framework_version": text,
        "capability_id": maybe_text,
        "capability_description": maybe_text,
        "comments": maybe_text,
        "references": st.none() | st.lists(text, max_size=3),
        "status": st.sampled_from(["complete", "in_progress", "non_mappable"]),
        "technology_domain": text,
        "score_category": st.sampled_from(["protect", "detect", "respond", None]),
        "score_value": st.sampled_from(["minimal", "partial", "significant", None]),
        "related_score": maybe_text,
    }
    mapping_type = (
        st.none()
        | st.sampled_from(
            ["protects", "mitigates", "technique_score", "technique_scores", "non_mappable"]
        )
        | text
    )
    row = st.fixed_dictionaries(
        {"mapping_type": mapping_type, "capability_group": maybe_text},
        optional=optional_row,
    )

    @st.composite
    def documents(draw: Any) -> dict[str, Any]:
        metadata = draw(
            st.fixed_dictionaries(
                {
                    "mapping_version": text,
                    "attack_version": text,
                    "technology_domain": st.sampled_from(["enterprise", "mobile", "ics"]),
                    "creation_date": date,
                    "mapping_framework": text,
                    "mapping_framework_version": text,
                    "mapping_types": st.dictionaries(
                        text,
                        st.fixed_dictionaries({"name": text, "description": text}),
                        max_size=3,
                    ),
                    "capability_groups": st.dictionaries(text, text, max_size=3),
                },
                optional=optional_meta,
            )
        )
        rows = draw(st.lists(row, max_size=8))
        if rows:
            copies = draw(st.lists(st.integers(0, len(rows) - 1), max_size=4))
            rows += [copy.deepcopy(rows[i]) for i in copies]
            rows = draw(st.permutations(rows))
        return {"metadata": metadata, "mapping_objects": rows}

    return documents()
