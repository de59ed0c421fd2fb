-- Tandem store, PostgreSQL dialect. Keep in step with ../sqlite/0001_initial.sql: same tables,
-- same columns, same meaning. Times are unix milliseconds (UTC); JSON columns are jsonb.

-- The pairing of a HubSpot record with its Accelo twin, and the values of the mapped fields as
-- they were when the pair was last synced (a JSON object: mapping name -> value).
CREATE TABLE links (
    object         TEXT    NOT NULL CHECK (object IN ('company', 'contact')),
    hubspot_id     TEXT    NOT NULL,
    accelo_id      TEXT    NOT NULL,
    affiliation_id TEXT,
    last_synced    JSONB   NOT NULL DEFAULT '{}',
    updated_at     BIGINT  NOT NULL,
    PRIMARY KEY (object, hubspot_id),
    UNIQUE (object, accelo_id)
);

-- The job queue. A job is claimed by one worker at a time under a lease that the worker extends
-- with heartbeats; a lease that expires makes the job claimable again (crash recovery).
CREATE TABLE jobs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             TEXT    NOT NULL,
    payload          JSONB   NOT NULL DEFAULT 'null',
    state            TEXT    NOT NULL
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts         BIGINT  NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    progress_done    BIGINT  NOT NULL DEFAULT 0,
    progress_total   BIGINT,
    coalesce_key     TEXT,
    checkpoint       JSONB,
    error            TEXT,
    created_at       BIGINT  NOT NULL,
    run_after        BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT
);
-- At most one queued job per coalescing key: later events for the same record join it.
CREATE UNIQUE INDEX jobs_coalesce_queued ON jobs (coalesce_key)
    WHERE state = 'queued' AND coalesce_key IS NOT NULL;
CREATE INDEX jobs_claimable ON jobs (state, run_after, id);

-- The sync log: append-only. `body` is the whole entry as JSON; the other columns exist to be
-- filtered on.
CREATE TABLE sync_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            BIGINT  NOT NULL,
    job_id        BIGINT  REFERENCES jobs (id) ON DELETE SET NULL,
    kind          TEXT    NOT NULL
                  CHECK (kind IN ('run_started', 'run_progress', 'run_finished', 'record', 'notice')),
    object        TEXT,
    source_system TEXT,
    source_id     TEXT,
    target_system TEXT,
    target_id     TEXT,
    outcome       TEXT,
    body          JSONB   NOT NULL
);
CREATE INDEX sync_log_job ON sync_log (job_id, id);
CREATE INDEX sync_log_at ON sync_log (at);
CREATE INDEX sync_log_source ON sync_log (source_system, object, source_id);
CREATE INDEX sync_log_target ON sync_log (target_system, object, target_id);

-- Creates about to happen (B20): opened before the remote create, resolved after it.
CREATE TABLE intents (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        BIGINT  REFERENCES jobs (id) ON DELETE SET NULL,
    object        TEXT    NOT NULL,
    source_system TEXT    NOT NULL,
    source_id     TEXT    NOT NULL,
    target_system TEXT    NOT NULL,
    dedup         JSONB   NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('open', 'resolved', 'abandoned')),
    created_id    TEXT,
    opened_at     BIGINT  NOT NULL,
    resolved_at   BIGINT
);
CREATE INDEX intents_open ON intents (state, id);

-- Values Tandem wrote (B17), remembered until they expire or the change they cause is seen.
CREATE TABLE echoes (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    system     TEXT    NOT NULL,
    object     TEXT    NOT NULL,
    record_id  TEXT    NOT NULL,
    field      TEXT    NOT NULL,
    value_hash TEXT    NOT NULL,
    written_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX echoes_lookup ON echoes (system, object, record_id, field, value_hash);
CREATE INDEX echoes_expiry ON echoes (expires_at);

-- Named poll watermarks.
CREATE TABLE cursors (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- Received webhook events, deduplicated by (source, dedup_key), with the job they joined.
CREATE TABLE events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       TEXT    NOT NULL,
    dedup_key    TEXT    NOT NULL,
    object       TEXT,
    record_id    TEXT,
    payload      JSONB   NOT NULL,
    received_at  BIGINT  NOT NULL,
    job_id       BIGINT  REFERENCES jobs (id) ON DELETE SET NULL,
    processed_at BIGINT,
    UNIQUE (source, dedup_key)
);
CREATE INDEX events_job ON events (job_id);
CREATE INDEX events_unprocessed ON events (processed_at, id);
