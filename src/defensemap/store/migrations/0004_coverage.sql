-- Threat-informed coverage inputs: the controls in place (one set, replaced by each import),
-- the team's existing rule sets (named; re-importing a name replaces that set) and the Atomic
-- Red Team tests (one set, replaced by each `import atomics`).
CREATE TABLE coverage_control_import (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    source TEXT NOT NULL,
    imported_at TEXT NOT NULL
);

CREATE TABLE coverage_control (
    position INTEGER PRIMARY KEY,
    framework TEXT NOT NULL,
    capability_id TEXT NOT NULL COLLATE NOCASE,
    status TEXT NOT NULL
        CHECK (status IN ('implemented', 'partial', 'planned', 'not-applicable')),
    framework_version TEXT,
    source TEXT NOT NULL
);

CREATE TABLE rule_set (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    sources TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    files INTEGER NOT NULL,
    by_format TEXT NOT NULL,
    skipped TEXT NOT NULL
);

CREATE TABLE rule_set_rule (
    set_name TEXT NOT NULL COLLATE NOCASE REFERENCES rule_set (name) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    origin TEXT NOT NULL,
    techniques TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    language TEXT NOT NULL,
    tables TEXT NOT NULL,
    logsource TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (set_name, position)
);

CREATE TABLE atomic_import (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    source TEXT NOT NULL,
    imported_at TEXT NOT NULL
);

CREATE TABLE atomic_test (
    guid TEXT PRIMARY KEY COLLATE NOCASE,
    name TEXT NOT NULL,
    technique TEXT NOT NULL COLLATE NOCASE,
    platforms TEXT NOT NULL
);
CREATE INDEX atomic_test_by_technique ON atomic_test (technique);
