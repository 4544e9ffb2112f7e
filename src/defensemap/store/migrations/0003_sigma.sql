-- Community Sigma rules (SigmaHQ, Detection Rule License 1.1): one set, replaced as a whole by
-- each `import sigma`; every rule stored once with its YAML exactly as written and its source.
CREATE TABLE sigma_import (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    sources TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    found INTEGER NOT NULL,
    loaded INTEGER NOT NULL,
    skipped TEXT NOT NULL
);

CREATE TABLE sigma_rule (
    id TEXT PRIMARY KEY COLLATE NOCASE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT,
    level TEXT,
    author TEXT NOT NULL,
    date TEXT,
    modified TEXT,
    product TEXT,
    category TEXT,
    service TEXT,
    techniques TEXT NOT NULL,
    tactics TEXT NOT NULL,
    tags TEXT NOT NULL,
    refs TEXT NOT NULL,
    false_positives TEXT NOT NULL,
    yaml TEXT NOT NULL,
    path TEXT NOT NULL,
    source_url TEXT NOT NULL,
    licence TEXT NOT NULL
);

-- Rules by tagged technique (upper-case ATT&CK id), for the technique page and --technique.
CREATE TABLE sigma_rule_technique (
    technique TEXT NOT NULL COLLATE NOCASE,
    rule_id TEXT NOT NULL REFERENCES sigma_rule (id) ON DELETE CASCADE,
    PRIMARY KEY (technique, rule_id)
);
CREATE INDEX sigma_rule_technique_by_rule ON sigma_rule_technique (rule_id);
