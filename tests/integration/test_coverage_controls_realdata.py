"""Controls in place checked against every real Mappings Explorer file: which capability ids
no loaded set of their framework (and version) maps."""

from __future__ import annotations

from pathlib import Path

from defensemap.kb.controls import capability_key, unknown_capabilities
from defensemap.model.coverage import ControlInPlace
from defensemap.store.db import open_store


def _control(framework: str, capability: str, version: str | None = None) -> ControlInPlace:
    return ControlInPlace(framework, capability, "implemented", version)


def test_unknown_capabilities_on_the_real_mappings(loaded_store_path: Path) -> None:
    controls = [
        _control("nist_800_53", "ia-5"),  # files write IA-5 (rev4) and IA-05 (newest rev5)
        _control("nist_800_53", "AC-02", "REV4"),  # rev4 writes AC-2
        _control("nist_800_53", "SR-11", "rev4"),  # supply chain controls are rev5 only
        _control("nist_800_53", "SR-11", "rev5"),
        _control("m365", "EID-CA-E3"),
        _control("kev", "CVE-2024-34102"),
        _control("aws", "amazon_cognito"),
        _control("azure", "amazon_cognito"),  # an AWS capability, not an Azure one
        _control("veris", "action.hacking.variety.Brute force"),
        _control("gcp", "not_a_gcp_service"),
    ]
    store = open_store(loaded_store_path)
    try:
        unknown = unknown_capabilities(store, controls)
    finally:
        store.close()
    assert [(c.framework, c.capability_id, c.framework_version) for c in unknown] == [
        ("nist_800_53", "SR-11", "rev4"),
        ("azure", "amazon_cognito", None),
        ("gcp", "not_a_gcp_service", None),
    ]


def test_capability_key_only_drops_zeros_for_nist() -> None:
    assert capability_key("nist_800_53", "IA-05") == capability_key("nist_800_53", "ia-5")
    assert capability_key("nist_800_53", "AC-10") != capability_key("nist_800_53", "AC-1")
    assert capability_key("cri_profile", "DE.AE-02.01") == "de.ae-02.01"
