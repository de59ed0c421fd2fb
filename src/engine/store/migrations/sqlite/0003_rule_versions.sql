-- Every version of a rule file (or tandem.yaml) saved from the console, with who saved it.
CREATE TABLE rule_versions (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    file     TEXT    NOT NULL,
    text     TEXT    NOT NULL,
    saved_by TEXT    NOT NULL,
    saved_at INTEGER NOT NULL
);
CREATE INDEX rule_versions_file ON rule_versions (file, id);
-- The console's sync-log filters: by object and outcome, newest first.
CREATE INDEX sync_log_outcome ON sync_log (outcome, id);
