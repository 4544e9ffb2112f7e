"""Documentation that users rely on stays in step with the code."""

from __future__ import annotations

import re

from tests.conftest import REPO

from defensemap.cli.attack import DESCRIBED


def _envelope_kinds() -> set[str]:
    """Every literal kind the code puts in a JSON envelope."""
    pattern = re.compile(r'envelope\(\s*"([a-z][a-z-]*)"')
    src = REPO / "src" / "defensemap"
    return {m for path in src.rglob("*.py") for m in pattern.findall(path.read_text())}


def test_every_json_kind_is_documented() -> None:
    doc = (REPO / "docs" / "json-output.md").read_text(encoding="utf-8")
    kinds = _envelope_kinds()
    assert {"search", "kql-check", "test", "content-validate"} <= kinds  # the scan works
    for kind in sorted({*DESCRIBED, *kinds}):
        assert f"`{kind}`" in doc, kind


def test_readme_has_exactly_the_two_quickstart_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quickstart = readme.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quickstart.strip().splitlines()]
    assert commands == ["./dev run", "./dev test"]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^exec \./dev test$", ci, re.MULTILINE)
