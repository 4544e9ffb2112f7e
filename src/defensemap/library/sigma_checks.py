"""The published Sigma rule of a detection through pySigma's core and SigmaHQ validators,
offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from defensemap.library.sigma import effective_sigma
from defensemap.model.detection import Detection

# Validators left out on purpose, with why (shown by `content validate`).
EXCLUDED = {
    "sigmahq_filename_convention": "the rule lives inside a detection file named by our convention",
    "sigmahq_filename_prefix": "the rule lives inside a detection file named by our convention",
    "sigmahq_correlation_filename_prefix": "no separate rule files",
    "filename_length": "no separate rule files",
    "duplicate_filename": "no separate rule files",
    "sigmahq_status_to_high": (
        "status reflects our own engine tests (`defensemap test`), not SigmaHQ's age policy"
    ),
    "d3_fendtag": "detections carry no D3FEND tags; its data would need the network",
}
_NEEDS_ATTACK = ("attacktag", "sigmahq_tags_techniques_without_tactics")


class SigmaChecker:
    """Runs each validator on its own so one whose reference data cannot be fetched (SigmaHQ
    taxonomy files come from GitHub) is reported as not run instead of failing the rest.
    ATT&CK tag validators read ``attack_bundle`` (written from the store) instead of the web."""

    def __init__(self, attack_bundle: Path | None) -> None:
        from sigma.plugins import InstalledSigmaPlugins

        excluded = dict(EXCLUDED)
        if attack_bundle is None:
            excluded |= dict.fromkeys(_NEEDS_ATTACK, "no ATT&CK data in the store")
        else:
            from sigma.data import mitre_attack

            mitre_attack.set_url(str(attack_bundle))
        validators = InstalledSigmaPlugins.autodiscover().validators
        self._validators = {k: v for k, v in sorted(validators.items()) if k not in excluded}
        self._excluded = excluded
        self._offline: dict[str, str] = {}

    def problems(self, detection: Detection) -> list[str]:
        from sigma.collection import SigmaCollection
        from sigma.exceptions import SigmaError

        rule_dict = effective_sigma(detection)
        if rule_dict is None:
            return []
        try:
            collection = SigmaCollection.from_dicts([rule_dict], collect_errors=True)
        except SigmaError as exc:
            return [f"not a valid Sigma rule: {exc}"]
        errors = [f"not a valid Sigma rule: {e}" for e in collection.errors]
        if errors or not collection.rules:
            return errors or ["not a valid Sigma rule"]
        rule = collection.rules[0]
        return self._validate(rule)

    def _validate(self, rule: Any) -> list[str]:
        found: list[str] = []
        for name, validator_class in self._validators.items():
            if name in self._offline:
                continue
            validator = cast(Any, validator_class)()
            try:
                issues = validator.validate(rule) + validator.finalize()
            except RuntimeError as exc:
                self._offline[name] = str(exc).split(":")[0]
                continue
            found += [f"{name}: {issue.description}{_details(issue)}" for issue in issues]
        return sorted(set(found))

    def notes(self) -> list[str]:
        notes = [f"Sigma validator {k} not run: {why}" for k, why in sorted(self._excluded.items())]
        notes += [
            f"Sigma validator {k} not run: {why} (needs its reference data online once)"
            for k, why in sorted(self._offline.items())
        ]
        return notes


def _details(issue: Any) -> str:
    """The issue's own fields (the tag, tactic or field it is about), not the rule it names."""
    extra = {k: v for k, v in vars(issue).items() if k not in ("rules", "severity")}
    return f" ({', '.join(f'{k}: {v}' for k, v in extra.items())})" if extra else ""
