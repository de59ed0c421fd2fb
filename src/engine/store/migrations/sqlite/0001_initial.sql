-- Tandem store, SQLite dialect. Keep in step with ../postgres/0001_initial.sql: same tables,
-- same columns, same meaning. Times are unix milliseconds (UTC); JSON columns hold JSON text.

-- The pairing of a HubSpot record with its Accelo twin, and the values of the mapped fields as
-- they were when the pair was last synced (a JSON object: mapping name -> value).
CREATE TABLE links (
    object         TEXT    NOT NULL CHECK (object IN ('company', 'contact')),
    hubspot_id     TEXT    NOT NULL,
    accelo_id      TEXT    NOT NULL,
    affiliation_id TEXT,
    last_synced    TEXT    NOT NULL DEFAULT '{}',
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (object, hubspot_id),
    UNIQUE (object, accelo_id)
);

-- The job queue. A job is claimed by one worker at a time under a lease that the worker extends
-- with heartbeats; a lease that expires makes the job claimable again (crash recovery).
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL DEFAULT 'null',
    state            TEXT    NOT NULL
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    progress_done    INTEGER NOT NULL DEFAULT 0,
    progress_total   INTEGER,
    coalesce_key     TEXT,
    checkpoint       TEXT,
    error            TEXT,
    created_at       INTEGER NOT NULL,
    run_after        INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);
-- At most one queued job per coalescing key: later events for the same record join it.
CREATE UNIQUE INDEX jobs_coalesce_queued ON jobs (coalesce_key)
    WHERE state = 'queued' AND coalesce_key IS NOT NULL;
CREATE INDEX jobs_claimable ON jobs (state, run_after, id);

-- The sync log: append-only. `body` is the whole entry as JSON; the other columns exist to be
-- filtered on.
CREATE TABLE sync_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    job_id        INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    kind          TEXT    NOT NULL
                  CHECK (kind IN ('run_started', 'run_progress', 'run_finished', 'record', 'notice')),
    object        TEXT,
    source_system TEXT,
    source_id     TEXT,
    target_system TEXT,
    target_id     TEXT,
    outcome       TEXT,
    body          TEXT    NOT NULL
);
CREATE INDEX sync_log_job ON sync_log (job_id, id);
CREATE INDEX sync_log_at ON sync_log (at);
CREATE INDEX sync_log_source ON sync_log (source_system, object, source_id);
CREATE INDEX sync_log_target ON sync_log (target_system, object, target_id);

-- Creates about to happen (B20): opened before the remote create, resolved after it.
CREATE TABLE intents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id        INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    object        TEXT    NOT NULL,
    source_system TEXT    NOT NULL,
    source_id     TEXT    NOT NULL,
    target_system TEXT    NOT NULL,
    dedup         TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('open', 'resolved', 'abandoned')),
    created_id    TEXT,
    opened_at     INTEGER NOT NULL,
    resolved_at   INTEGER
);
CREATE INDEX intents_open ON intents (state, id);

-- Values Tandem wrote (B17), remembered until they expire or the change they cause is seen.
CREATE TABLE echoes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    system     TEXT    NOT NULL,
    object     TEXT    NOT NULL,
    record_id  TEXT    NOT NULL,
    field      TEXT    NOT NULL,
    value_hash TEXT    NOT NULL,
    written_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX echoes_lookup ON echoes (system, object, record_id, field, value_hash);
CREATE INDEX echoes_expiry ON echoes (expires_at);

-- Named poll watermarks.
CREATE TABLE cursors (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Received webhook events, deduplicated by (source, dedup_key), with the job they joined.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT    NOT NULL,
    dedup_key    TEXT    NOT NULL,
    object       TEXT,
    record_id    TEXT,
    payload      TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    job_id       INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    processed_at INTEGER,
    UNIQUE (source, dedup_key)
);
CREATE INDEX events_job ON events (job_id);
CREATE INDEX events_unprocessed ON events (processed_at, id);
