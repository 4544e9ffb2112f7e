"""Controls in place checked against every real Mappings Explorer file: which capability ids
the set coverage judges them against (newest of the framework, or the named version) lacks."""

from __future__ import annotations

from pathlib import Path

from defensemap.kb.controls import unknown_capabilities
from defensemap.model.coverage import ControlInPlace, CoverageInputs, ThreatProfile
from defensemap.model.mappings import capability_key
from defensemap.store.db import Store, open_store


def _control(framework: str, capability: str, version: str | None = None) -> ControlInPlace:
    return ControlInPlace(framework, capability, "implemented", version)


def test_unknown_capabilities_on_the_real_mappings(loaded_store_path: Path) -> None:
    controls = [
        _control("nist_800_53", "ia-5"),  # files write IA-5 (rev4) and IA-05 (newest rev5)
        _control("nist_800_53", "AC-02", "REV4"),  # rev4 writes AC-2
        _control("nist_800_53", "SR-11", "rev4"),  # supply chain controls are rev5 only
        _control("nist_800_53", "SR-11", "rev5"),
        _control("nist_800_53", "SA-12"),  # rev4 only: judged against the newest set, rev5
        _control("nist_800_53", "SA-12", "rev4"),
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
        for control in controls:  # coverage refuses exactly what the import warned about
            refused = _refused_by_coverage(store, control)
            assert refused == (control in unknown), control
    finally:
        store.close()
    assert [(c.framework, c.capability_id, c.framework_version) for c in unknown] == [
        ("nist_800_53", "SR-11", "rev4"),
        ("nist_800_53", "SA-12", None),
        ("azure", "amazon_cognito", None),
        ("gcp", "not_a_gcp_service", None),
    ]


def _inputs(control: ControlInPlace) -> CoverageInputs:
    """An empty threat profile: only the controls are read."""
    return CoverageInputs("18.1", ThreatProfile((), ()), controls=(control,))


def _refused_by_coverage(store: Store, control: ControlInPlace) -> bool:
    from defensemap.coverage.compute import compute_coverage
    from defensemap.errors import InputError

    try:
        compute_coverage(store, _inputs(control))
    except InputError as error:
        return "unknown capability" in error.message
    return False


def test_capability_key_only_drops_zeros_for_nist() -> None:
    assert capability_key("nist_800_53", "IA-05") == capability_key("nist_800_53", "ia-5")
    assert capability_key("nist_800_53", "AC-10") != capability_key("nist_800_53", "AC-1")
    assert capability_key("cri_profile", "DE.AE-02.01") == "de.ae-02.01"
