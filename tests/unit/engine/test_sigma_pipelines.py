"""pySigma's ``@Pipeline`` decorator shares one instance between decorated pipelines: after
plugin discovery imports the test pipeline, the name ``sysmon_pipeline`` builds that one. Our
engine and conversions must keep getting the real Sysmon pipeline."""

from __future__ import annotations

import importlib

from sigma.plugins import InstalledSigmaPlugins

from defensemap.engine.sigma.pipelines import sysmon_pipeline


def test_sysmon_pipeline_survives_plugin_discovery() -> None:
    InstalledSigmaPlugins.autodiscover()
    from sigma.pipelines.sysmon.sysmon import sysmon_pipeline as upstream

    importlib.reload(importlib.import_module("sigma.pipelines.test.pipeline"))  # decorated last
    try:
        assert "sysmon" not in (upstream().name or "").lower()  # the upstream bug, still there
        pipeline = sysmon_pipeline()
        assert "sysmon" in (pipeline.name or "").lower()
        assert any("sysmon" in (item.identifier or "") for item in pipeline.items)
    finally:
        importlib.reload(importlib.import_module("sigma.pipelines.sysmon.sysmon"))
