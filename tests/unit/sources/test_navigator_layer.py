"""Reading ATT&CK Navigator layers: layer formats 4.3–4.5 become typed layers; every malformed
layer is refused with an error naming the file and the JSON pointer of the problem."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.file_cases import mutated_case, raw_case

from defensemap.errors import ParseError, SchemaError, SourceError
from defensemap.sources.navigator_layer import LayerEntry, import_problems, load_layer


def good_layer(layer_version: str = "4.5") -> dict[str, Any]:
    return {
        "name": "APT29 techniques",
        "versions": {"attack": "18", "navigator": "5.1.0", "layer": layer_version},
        "domain": "enterprise-attack",
        "description": "hand-painted",
        "techniques": [
            {
                "techniqueID": "T1059.001",
                "tactic": "execution",
                "score": 3,
                "comment": "seen in 2024",
                "enabled": True,
                "color": "#ff6666",
                "metadata": [{"name": "source", "value": "report"}, {"divider": True}],
            },
            {"techniqueID": "T1078.004", "enabled": False},
        ],
        "gradient": {"colors": ["#ffffff", "#ff6666"], "minValue": 0, "maxValue": 5},
    }


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize("version", ["4.3", "4.4", "4.5"])
def test_reads_every_supported_layer_version(tmp_path: Path, version: str) -> None:
    layer = load_layer(write(tmp_path / "layer.json", good_layer(version)))
    assert (layer.name, layer.domain, layer.attack_version, layer.layer_version) == (
        "APT29 techniques",
        "enterprise-attack",
        "18",
        version,
    )
    assert layer.techniques == (
        LayerEntry(
            "T1059.001", "execution", 3.0, "seen in 2024", True, "#ff6666", (("source", "report"),)
        ),
        LayerEntry("T1078.004", enabled=False),
    )
    assert layer.technique_ids() == ["T1059.001"]
    assert layer.score_range == (0, 5)
    assert layer.path == str(tmp_path / "layer.json")


def test_a_layer_without_attack_version_or_gradient(tmp_path: Path) -> None:
    document = good_layer()
    del document["versions"]["attack"], document["gradient"]
    layer = load_layer(write(tmp_path / "layer.json", document))
    assert layer.attack_version is None and layer.score_range is None


def _change(change: Callable[[dict[str, Any]], object]) -> Callable[[Path], Path]:
    return mutated_case(good_layer, write, change, "bad.json")


# case -> (file builder, error type, JSON pointer in the message or None for line:column)
BAD_LAYERS: dict[str, tuple[Callable[[Path], Path], type[SourceError], str | None]] = {
    "not JSON": (raw_case(b'{"name": "x",\n  "techniques": [', "bad.json"), ParseError, None),
    "a JSON list": (raw_case(b"[]", "bad.json"), SchemaError, "#/"),
    "missing techniques": (_change(lambda d: d.pop("techniques")), SchemaError, "#/techniques"),
    "techniques not a list": (
        _change(lambda d: d.update(techniques={"T1059": 1})),
        SchemaError,
        "#/techniques",
    ),
    "not an ATT&CK id": (
        _change(lambda d: d["techniques"][1].update(techniqueID="1078")),
        SchemaError,
        "#/techniques/1/techniqueID",
    ),
    "a sub-technique id of two digits": (
        _change(lambda d: d["techniques"][0].update(techniqueID="T1059.01")),
        SchemaError,
        "#/techniques/0/techniqueID",
    ),
    "score a string": (
        _change(lambda d: d["techniques"][1].update(score="3")),
        SchemaError,
        "#/techniques/1/score",
    ),
    "score a boolean": (
        _change(lambda d: d["techniques"][0].update(score=True)),
        SchemaError,
        "#/techniques/0/score",
    ),
    "unknown domain": (_change(lambda d: d.update(domain="pre-attack")), SchemaError, "#/domain"),
    "layer format 4.2": (
        _change(lambda d: d["versions"].update(layer="4.2")),
        SchemaError,
        "#/versions/layer",
    ),
    "no versions (layer format 3)": (
        _change(lambda d: d.pop("versions")),
        SchemaError,
        "#/versions/layer",
    ),
    "ATT&CK version a number": (
        _change(lambda d: d["versions"].update(attack=18)),
        SchemaError,
        "#/versions/attack",
    ),
    "enabled a string": (
        _change(lambda d: d["techniques"][0].update(enabled="yes")),
        SchemaError,
        "#/techniques/0/enabled",
    ),
    "bad tactic": (
        _change(lambda d: d["techniques"][0].update(tactic="Execution")),
        SchemaError,
        "#/techniques/0/tactic",
    ),
    "description not text": (
        _change(lambda d: d.update(description=["x"])),
        SchemaError,
        "#/description",
    ),
    "missing name": (_change(lambda d: d.pop("name")), SchemaError, "#/name"),
}


@pytest.mark.parametrize("case", BAD_LAYERS)
def test_malformed_layers_name_file_and_pointer(tmp_path: Path, case: str) -> None:
    build, error_type, pointer = BAD_LAYERS[case]
    path = build(tmp_path)
    with pytest.raises(error_type) as caught:
        load_layer(path)
    text = str(caught.value)
    assert text.startswith(str(path)), text
    if pointer is None:
        assert caught.value.location is not None and caught.value.location.line == 2
    else:
        assert text.startswith(f"{path}{pointer}:"), text


def test_every_problem_is_counted_in_the_message(tmp_path: Path) -> None:
    document = good_layer()
    document["domain"] = "x"
    document["techniques"][0]["score"] = "high"
    document["techniques"][1]["techniqueID"] = "X"
    with pytest.raises(SchemaError) as caught:
        load_layer(write(tmp_path / "bad.json", document))
    assert "(and 2 more: /techniques/0/score, /techniques/1/techniqueID)" in str(caught.value)


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="file not found"):
        load_layer(tmp_path / "nope.json")


def test_a_valid_layer_has_no_import_problems() -> None:
    assert import_problems(good_layer()) == []
