"""The detection and community-rule outputs are documented where users look for them."""

from __future__ import annotations

from tests.conftest import REPO


def test_detection_json_kinds_are_documented() -> None:
    doc = (REPO / "docs" / "json-output.md").read_text(encoding="utf-8")
    for kind in ("detections", "detection", "community-rule", "import-sigma"):
        assert f"`{kind}`" in doc, kind


def test_the_importer_is_documented() -> None:
    doc = (REPO / "docs" / "detections.md").read_text(encoding="utf-8")
    section = doc.split("## Community rules (SigmaHQ)", 1)[1]
    for needle in ("import sigma", "--strict", "DRL", "hunt --community", "skipped"):
        assert needle in section, needle
