"""Coverage per technique of a threat profile: which controls in place protect it, which
detections run for it, what data they lack, a score with the sentence that explains it, the
ranked gaps and the cheapest next step for each.

The store is read in bulk (one query per chosen mapping set, one for community rules); the
per-technique work is pure and uses the model in ``scoring``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from itertools import groupby

from defensemap.coverage import scoring
from defensemap.coverage.inputs import community_rules, library_rules
from defensemap.coverage.reasons import reason
from defensemap.errors import InputError
from defensemap.kb.controls import judging_set
from defensemap.kb.mappings import resolver_for
from defensemap.kb.threat import validation_plan
from defensemap.kb.vocabulary import AttackVocabulary, attack_vocabulary
from defensemap.library.loader import Library
from defensemap.model.atomics import AtomicIndex
from defensemap.model.coverage import (
    AtomicCheck,
    ControlHit,
    ControlInPlace,
    ControlStatus,
    CoverageInputs,
    CoverageReport,
    DeployedRule,
    DetectionHit,
    NextStep,
    Procedure,
    TechniqueCoverage,
)
from defensemap.model.mappings import (
    NON_MAPPABLE,
    MappingRow,
    MappingSet,
    capability_key,
    framework_label,
)
from defensemap.store import mappings as mapping_store
from defensemap.store import sigma as sigma_store
from defensemap.store.db import Store
from defensemap.util import paused_gc

ENTERPRISE = "enterprise-attack"

SetRows = list[tuple[int, MappingRow]]
ControlIndex = dict[tuple[int, str], ControlInPlace]


@dataclass(frozen=True)
class Mapped:
    """One capability of a chosen mapping set mapped to a technique of the profile."""

    set_id: int
    framework: str
    capability_id: str
    description: str
    mapping_type: str
    score_category: str | None
    score_value: str | None

    @property
    def key(self) -> tuple[int, str]:
        return self.set_id, capability_key(self.framework, self.capability_id)


@dataclass(frozen=True)
class Context:
    """Everything the per-technique computation reads, indexed by technique id."""

    vocabulary: AttackVocabulary
    mapped: dict[str, list[Mapped]]
    controls: ControlIndex
    rules: dict[str, list[DeployedRule]]
    candidates: dict[str, list[DeployedRule]]
    tables: frozenset[str] | None
    atomics: AtomicIndex | None
    atomic_guids: dict[str, tuple[str, ...]]


def compute_coverage(
    store: Store,
    inputs: CoverageInputs,
    *,
    atomics: AtomicIndex | None = None,
    library: Library | None = None,
) -> CoverageReport:
    """Coverage of every technique of ``inputs.profile``; gaps (score < 100) ranked by
    threat weight × missing coverage, ties by technique id. Nothing built here forms cycles,
    so the cyclic GC is paused (it would walk every row object several times)."""
    with paused_gc():
        return _compute(store, inputs, atomics, library)


def _compute(
    store: Store, inputs: CoverageInputs, atomics: AtomicIndex | None, library: Library | None
) -> CoverageReport:
    profile = inputs.profile.techniques()
    vocabulary = attack_vocabulary(store, inputs.attack_version)
    sets, rows, controls = _chosen_sets(store, inputs.controls)
    context = Context(
        vocabulary=vocabulary,
        mapped=_mapped(store, inputs.attack_version, sets, rows, profile),
        controls=controls,
        rules=_by_technique(_unique(inputs.rules), profile),
        candidates=_candidates(store, library, inputs.rules, profile),
        tables=inputs.tables,
        atomics=atomics,
        atomic_guids=_atomic_guids(library),
    )
    procedures: dict[str, list[Procedure]] = defaultdict(list)
    for procedure in inputs.profile.procedures:
        procedures[procedure.technique].append(procedure)
    techniques = tuple(
        _technique(context, technique, procedures[technique]) for technique in sorted(profile)
    )
    gaps = tuple(
        sorted(
            (t for t in techniques if t.score < scoring.MAX_SCORE),
            key=lambda t: (-scoring.gap_priority(t.threat_weight, t.score), t.technique),
        )
    )
    missing = sorted(t for t in profile if vocabulary.technique(t) is None)
    notes = _notes(inputs, missing, vocabulary)
    return CoverageReport(inputs=inputs, techniques=techniques, gaps=gaps, notes=notes)


# --- bulk reads ---------------------------------------------------------------------------------


def _chosen_sets(
    store: Store, controls: Iterable[ControlInPlace]
) -> tuple[dict[int, MappingSet], SetRows, ControlIndex]:
    """The mapping set each control is judged against (the newest of its framework unless it
    names a framework version), the sets' rows, and the controls by (set, capability).
    Capabilities a set does not know are refused together, in one error."""
    groups: dict[tuple[str, str | None], list[ControlInPlace]] = defaultdict(list)
    for control in controls:
        groups[(control.framework, control.framework_version)].append(control)
    sets = {key: judging_set(store, *key) for key in groups}
    by_id = {s.id: s for s in sets.values()}
    rows = mapping_store.rows_for(store, sorted(by_id))
    known: dict[int, set[str]] = defaultdict(set)
    for set_id, row in rows:
        if row.capability_id:
            framework = by_id[set_id].info.framework
            known[set_id].add(capability_key(framework, row.capability_id))
    by_key: ControlIndex = {}
    unknown: list[str] = []
    for key, members in groups.items():
        set_id = sets[key].id
        for control in members:
            capability = capability_key(control.framework, control.capability_id)
            if capability not in known[set_id]:
                unknown.append(_control_label(control))
            elif (set_id, capability) not in by_key or _better(control, by_key[set_id, capability]):
                by_key[set_id, capability] = control
    if unknown:
        raise InputError(
            f"unknown capability id(s): {', '.join(unknown)}",
            hint="see a framework's capabilities with `defensemap framework NAME`",
        )
    return by_id, rows, by_key


def _control_label(control: ControlInPlace) -> str:
    where = f" ({control.source})" if control.source else ""
    return f"{framework_label(control.framework)} {control.capability_id}{where}"


def _better(new: ControlInPlace, old: ControlInPlace) -> bool:
    """Listed twice, a capability counts with its most complete status."""
    return scoring.STATUS_FACTOR[new.status] > scoring.STATUS_FACTOR[old.status]


def _mapped(
    store: Store,
    attack_version: str,
    sets: dict[int, MappingSet],
    rows: SetRows,
    profile: frozenset[str],
) -> dict[str, list[Mapped]]:
    """Rows of the chosen sets landing on profile techniques on the user's ATT&CK version
    (ids revoked since the mapping was made count for their replacement)."""
    if not sets:
        return {}
    resolver = resolver_for(store, ENTERPRISE, attack_version)
    current: dict[str, str | None] = {}
    found: dict[str, list[Mapped]] = defaultdict(list)
    for set_id, row in rows:
        if row.mapping_type == NON_MAPPABLE or not row.capability_id or not row.attack_object_id:
            continue
        mapped_id = row.attack_object_id.upper()
        if mapped_id not in current:
            current[mapped_id] = resolver.resolve(mapped_id, None).current_id
        technique = (current[mapped_id] or "").upper()
        if technique in profile:
            found[technique].append(
                Mapped(
                    set_id,
                    sets[set_id].info.framework,
                    row.capability_id,
                    row.capability_description or "",
                    row.mapping_type,
                    row.score_category,
                    row.score_value,
                )
            )
    return found


def _unique(rules: Iterable[DeployedRule]) -> list[DeployedRule]:
    seen: dict[str, DeployedRule] = {}
    for rule in rules:
        seen.setdefault(rule.id.casefold(), rule)
    return list(seen.values())


def _by_technique(
    rules: Iterable[DeployedRule], profile: frozenset[str]
) -> dict[str, list[DeployedRule]]:
    """Rules by the exact techniques they name: a rule for T1021 does not cover T1021.001."""
    found: dict[str, list[DeployedRule]] = defaultdict(list)
    for rule in rules:
        for technique in dict.fromkeys(t.upper() for t in rule.techniques):
            if technique in profile:
                found[technique].append(rule)
    return found


def _candidates(
    store: Store,
    library: Library | None,
    deployed: Iterable[DeployedRule],
    profile: frozenset[str],
) -> dict[str, list[DeployedRule]]:
    """Library detections and imported community rules for profile techniques that are not
    deployed: what "enable a detection" can point at."""
    deployed = list(deployed)
    have = {rule.id.casefold() for rule in deployed}
    available = library_rules(library) if library is not None else []
    community = sum(1 for rule in deployed if rule.origin == "community")
    if profile and community < sigma_store.rule_count(store):
        available += community_rules(store, sorted(profile))
    return _by_technique((r for r in available if r.id.casefold() not in have), profile)


def _atomic_guids(library: Library | None) -> dict[str, tuple[str, ...]]:
    """The Atomic Red Team tests each library detection names (they should make it fire)."""
    if library is None:
        return {}
    return {
        str(d.detection.id).casefold(): tuple(t.guid for t in d.detection.atomic_tests.tests)
        for d in library.detections
    }


def _notes(
    inputs: CoverageInputs, missing: list[str], vocabulary: AttackVocabulary
) -> tuple[str, ...]:
    notes = []
    if inputs.tables is None:
        notes.append("data collected unknown: deployability of detections was not judged")
    if missing:
        notes.append(
            f"not in ATT&CK {vocabulary.version} enterprise (scored without name or tactics):"
            f" {', '.join(missing)}"
        )
    if not inputs.controls:
        notes.append("no controls in place given: every protect score is 0")
    if not inputs.rules:
        notes.append("no detections deployed: every detect score comes from controls only")
    return tuple(notes)


# --- one technique ------------------------------------------------------------------------------


def _technique(context: Context, technique: str, procedures: list[Procedure]) -> TechniqueCoverage:
    info = context.vocabulary.technique(technique)
    controls = _control_hits(context, technique)
    detections = tuple(_detection_hit(rule, context.tables) for rule in context.rules[technique])
    protect, detect = _sides(controls, detections)
    score = protect + detect
    available, missing = _tables(context, technique)
    coverage = TechniqueCoverage(
        technique=technique,
        name=info.name if info else technique,
        tactics=tuple(t.shortname for t in info.tactics) if info else (),
        threat_weight=scoring.threat_weight(p.actor_id for p in procedures),
        procedures=tuple(procedures),
        controls=controls,
        detections=detections,
        tables_available=available,
        tables_missing=missing,
        protect=protect,
        detect=detect,
        score=score,
        reason="",
    )
    return replace(
        coverage,
        reason=reason(coverage, context.tables is not None),
        next_steps=_next_steps(context, coverage),
        validation=_validation(context, coverage),
    )


def _control_hits(context: Context, technique: str) -> tuple[ControlHit, ...]:
    hits = []
    for mapped in context.mapped.get(technique, ()):
        control = context.controls.get(mapped.key)
        if control is not None:
            hits.append(_control_hit(mapped, control.status))
    return tuple(sorted(hits, key=lambda h: (-h.points, h.framework, h.capability_id)))


def _control_hit(mapped: Mapped, status: ControlStatus) -> ControlHit:
    side, points = scoring.control_points(
        status,
        mapped.mapping_type,
        mapped.score_category,
        mapped.score_value,
    )
    return ControlHit(
        framework=mapped.framework,
        capability_id=mapped.capability_id,
        description=mapped.description,
        status=status,
        mapping_type=mapped.mapping_type,
        score_category=mapped.score_category if side else None,
        score_value=mapped.score_value if side else None,
        points=points,
    )


def _detection_hit(rule: DeployedRule, tables: frozenset[str] | None) -> DetectionHit:
    is_deployable = scoring.deployable(rule, tables)
    return DetectionHit(
        rule_id=rule.id,
        name=rule.name,
        origin=rule.origin,
        enabled=rule.enabled,
        tested=rule.tested,
        deployable=is_deployable,
        missing_tables=scoring.missing_tables(rule, tables),
        points=scoring.rule_points(rule, is_deployable),
    )


def control_side(hit: ControlHit) -> str | None:
    """Which side a control hit counts for (``detect`` only for detect-category scores)."""
    if hit.points == 0:
        return None
    return "detect" if hit.score_category == "detect" else "protect"


def _sides(
    controls: Iterable[ControlHit], detections: Iterable[DetectionHit]
) -> tuple[float, float]:
    controls = list(controls)
    protect = scoring.capped(
        (h.points for h in controls if control_side(h) == "protect"), scoring.PROTECT_CAP
    )
    detect = scoring.capped(
        [h.points for h in controls if control_side(h) == "detect"]
        + [d.points for d in detections],
        scoring.DETECT_CAP,
    )
    return protect, detect


def _tables(context: Context, technique: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The tables the technique's detections (deployed or available) read, split into
    collected and not collected; both empty when the data collected is unknown."""
    if context.tables is None:
        return (), ()
    rules = context.rules[technique] + context.candidates.get(technique, [])
    needed = sorted({t for rule in rules for t in rule.tables})
    have = {t.casefold() for t in context.tables}
    return (
        tuple(t for t in needed if t.casefold() in have),
        tuple(t for t in needed if t.casefold() not in have),
    )


# --- next steps -----------------------------------------------------------------------------


def _next_steps(context: Context, coverage: TechniqueCoverage) -> tuple[NextStep, ...]:
    """What raises the score, cheapest kind first and the biggest gain first within a kind;
    "write a detection" only when nothing else helps."""
    if coverage.score >= scoring.MAX_SCORE:
        return ()
    steps = [
        *_enable_steps(context, coverage),
        *_collect_steps(context, coverage),
        *_control_steps(context, coverage),
    ]
    steps = [s for s in steps if s.gain > 0]
    if not steps:
        steps.append(
            NextStep(
                "write-detection",
                coverage.technique,
                f"write a detection for {coverage.technique} {coverage.name}"
                " (nothing available raises its score)",
                0.0,
            )
        )
    steps.sort(key=lambda s: (scoring.STEP_ORDER[s.kind], -s.gain, s.target))
    return tuple(
        step
        for _, same_kind in groupby(steps, key=lambda s: s.kind)
        for step in list(same_kind)[: scoring.STEPS_PER_KIND]
    )


def _gain(
    coverage: TechniqueCoverage,
    controls: Iterable[ControlHit] | None = None,
    detections: Iterable[DetectionHit] | None = None,
) -> float:
    protect, detect = _sides(
        coverage.controls if controls is None else controls,
        coverage.detections if detections is None else detections,
    )
    return protect + detect - coverage.score


def _enable_steps(context: Context, coverage: TechniqueCoverage) -> list[NextStep]:
    """Disabled deployed rules and library/community rules not deployed, whose data is there
    (or not known to be missing)."""
    disabled = [r for r in context.rules[coverage.technique] if not r.enabled]
    available = context.candidates.get(coverage.technique, [])
    steps = []
    for rule in [*disabled, *available]:
        hit = _detection_hit(replace(rule, enabled=True), context.tables)
        if hit.deployable is False:
            continue
        others = [d for d in coverage.detections if d.rule_id != rule.id]
        verb = "enable" if rule in disabled else f"deploy the {rule.origin} rule"
        steps.append(
            NextStep(
                "enable-detection",
                rule.id,
                f"{verb} {rule.name!r} (+{scoring.fmt(hit.points)} detect)",
                _gain(coverage, detections=[*others, hit]),
            )
        )
    return steps


def _collect_steps(context: Context, coverage: TechniqueCoverage) -> list[NextStep]:
    """One step per table that deployed, enabled rules miss: collecting it makes them count."""
    if context.tables is None:
        return []
    rules = {r.id: r for r in context.rules[coverage.technique]}
    tables = sorted(
        {t for d in coverage.detections if d.enabled for t in d.missing_tables}, key=str.casefold
    )
    steps = []
    for table in tables:
        more = context.tables | {table}
        hits = [_detection_hit(rules[d.rule_id], more) for d in coverage.detections]
        helped = [h.name for h in hits if h.deployable and table in rules[h.rule_id].tables]
        steps.append(
            NextStep(
                "collect-table",
                table,
                f"collect {table} (needed by {', '.join(repr(n) for n in helped)})",
                _gain(coverage, detections=hits),
            )
        )
    return steps


def _control_steps(context: Context, coverage: TechniqueCoverage) -> list[NextStep]:
    """The single best capability of the frameworks in use that maps to the technique and is
    not implemented (not-applicable ones stay out)."""
    by_capability: dict[tuple[int, str], list[Mapped]] = defaultdict(list)
    for mapped in context.mapped.get(coverage.technique, ()):
        control = context.controls.get(mapped.key)
        if control is None or control.status in ("partial", "planned"):
            by_capability[mapped.key].append(mapped)
    steps = []
    for mappings in by_capability.values():
        first = mappings[0]
        kept = [
            h
            for h in coverage.controls
            if (h.framework, capability_key(h.framework, h.capability_id))
            != (first.framework, first.key[1])
        ]
        added = [_control_hit(m, "implemented") for m in mappings]
        label = f"{framework_label(first.framework)} {first.capability_id}"
        steps.append(
            NextStep(
                "implement-control",
                label,
                f"implement {label} {first.description}".strip(),
                _gain(coverage, controls=[*kept, *added]),
            )
        )
    return sorted(steps, key=lambda s: (-s.gain, s.target))[:1]


# --- validation plan ------------------------------------------------------------------------


def _validation(context: Context, coverage: TechniqueCoverage) -> tuple[AtomicCheck, ...]:
    """For a detected technique, the tests its deployed library detections name (they should
    make them fire); otherwise, or when they name none, the technique's tests (they show the
    gap or prove the detection)."""
    atomics = context.atomics
    if atomics is None:
        return ()
    named = [
        test
        for d in coverage.detections
        if d.points > 0
        for guid in context.atomic_guids.get(d.rule_id.casefold(), ())
        if (test := atomics.find(guid)) is not None and test.technique == coverage.technique
    ]
    if named:
        unique = {t.guid: t for t in named}
        return tuple(AtomicCheck(t.guid, t.name, t.technique, t.platforms) for t in unique.values())
    return tuple(validation_plan(atomics, coverage.technique))
