//! The SQL both backends share, and the one implementation of [`Store`](super::Store) built on
//! it.
//!
//! SQLite and PostgreSQL accept the same statements for almost everything here (`$n`
//! parameters, `RETURNING`, `ON CONFLICT`, partial unique indexes). The implementation is written
//! once, as the [`impl_store!`] macro, and instantiated for `SqliteStore` and `PgStore`, whose
//! files supply what differs: how a write transaction begins (`BEGIN IMMEDIATE` on SQLite), the
//! job-claim and echo-consume statements (`FOR UPDATE SKIP LOCKED` on PostgreSQL), how a list
//! parameter is expanded (`json_each` / `jsonb_array_elements_text`) and how sync-log ids are
//! kept in commit order (SQLite serialises writers; PostgreSQL locks `sync_log` in `EXCLUSIVE`
//! mode at the start of every transaction that appends to it, which also keeps those
//! transactions from deadlocking on links).
//!
//! Lock order: a transaction that writes several rows writes them in key order, whatever order
//! the caller gave them in — a batch of events by (source, dedup key), then its jobs by
//! coalescing key; settled events by id — so two concurrent transactions over the same rows
//! queue behind each other instead of deadlocking. The trait methods that write run their
//! transaction through `retry::retry_transient`, which runs it again after a deadlock or
//! serialisation abort.
//!
//! A macro rather than generics: sqlx's executor bounds over a generic `Database` make every
//! async method's `Send`-ness fragile, while a macro gives each backend plain concrete code.

/// The columns of `jobs`, in `JobRow` order.
macro_rules! job_columns {
    () => {
        "id, kind, payload, state, attempts, lease_owner, lease_expires_at, progress_done, \
         progress_total, coalesce_key, checkpoint, error, created_at, run_after, started_at, \
         finished_at"
    };
}

/// The columns of `links`, in `LinkRow` order.
macro_rules! link_columns {
    () => {
        "object, hubspot_id, accelo_id, affiliation_id, last_synced"
    };
}

/// The columns of `intents`, in `IntentRow` order.
macro_rules! intent_columns {
    () => {
        "id, job_id, object, source_system, source_id, target_system, dedup, state, created_id, \
         opened_at, resolved_at"
    };
}

/// The columns of `events`, in `EventRow` order.
macro_rules! event_columns {
    () => {
        "id, source, dedup_key, object, record_id, payload, received_at, job_id, processed_at"
    };
}

/// The `SET` clause and condition that claim a job: `$2` owner, `$3` lease expiry, `$4` now.
/// Claimable = queued and due, or running under an expired lease.
macro_rules! claim_set {
    () => {
        "UPDATE jobs SET state = 'running', lease_owner = $2, lease_expires_at = $3, \
         attempts = attempts + 1, started_at = COALESCE(started_at, $4) "
    };
}
macro_rules! claimable {
    () => {
        "((state = 'queued' AND run_after <= $4) OR (state = 'running' AND lease_expires_at <= $4))"
    };
}

/// Implements `Store` for `$ty` (a struct with `pool: sqlx::Pool<$db>` and `location: String`,
/// plus the dialect items listed in the module docs).
macro_rules! impl_store {
    ($ty:ident, $db:ty, $conn:ty, $backend:expr) => {
        mod store_impl {
            #[allow(unused_imports, reason = "each backend uses a different part of its module")]
            use super::*;
            use $crate::store::rows::{
                EventRow, IntentRow, JobRow, LeaseRow, LinkRow, LogColumns, LogRow, ms_after,
                now_ms, signed,
            };
            use $crate::store::{
                AcceptedEvent, Echo, Enqueued, Event, EventId, Intent, IntentId, IntentOpened, Job, JobEnd,
                JobFilter, JobId, JobKind, LinkChange, LogEntry, LogId, LogQuery, NewEvent,
                NewIntent, NewJob, NewLogEntry, RecordOutcome, StoreError,
            };
            use tandem_core::model::{Link, Object, System};
            use sqlx::types::Json;

            /// Maps a database error to [`StoreError::Query`] with what the store was doing.
            fn q(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
                move |source| StoreError::Query { op, source }
            }

            fn rule_version_of(
                (id, file, text, saved_by, saved_at): (i64, String, String, String, i64),
            ) -> Result<$crate::store::RuleVersion, StoreError> {
                let saved_at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(saved_at)
                    .ok_or_else(|| StoreError::Corrupt(format!("rule version `{id}`: bad time")))?;
                Ok($crate::store::RuleVersion { id, file, text, saved_by, saved_at })
            }

            fn is_unique_violation(e: &sqlx::Error) -> bool {
                e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation())
            }

            /// Why upserting a link inside a transaction failed.
            enum UpsertFailure {
                Conflict,
                Sql(sqlx::Error),
            }

            impl $ty {
                /// The link of `object` whose id on `system`'s side is `id`, inside a transaction.
                async fn link_in(
                    conn: &mut $conn,
                    object: Object,
                    system: System,
                    id: &str,
                ) -> Result<Option<Link>, StoreError> {
                    let sql = match system {
                        System::HubSpot => concat!(
                            "SELECT ", link_columns!(),
                            " FROM links WHERE object = $1 AND hubspot_id = $2"
                        ),
                        System::Accelo => concat!(
                            "SELECT ", link_columns!(),
                            " FROM links WHERE object = $1 AND accelo_id = $2"
                        ),
                    };
                    let row: Option<LinkRow> = sqlx::query_as(sql)
                        .bind(object.as_str())
                        .bind(id)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(q("reading a link"))?;
                    row.map(LinkRow::into_link).transpose()
                }

                /// The oldest open intent to create a copy of (`object`, `system`, `id`) — in
                /// `target` only, when given — other than `except`.
                async fn open_intent_in(
                    conn: &mut $conn,
                    object: Object,
                    system: System,
                    id: &str,
                    target: Option<System>,
                    except: Option<IntentId>,
                ) -> Result<Option<Intent>, StoreError> {
                    let row: Option<IntentRow> = sqlx::query_as(concat!(
                        "SELECT ", intent_columns!(),
                        " FROM intents WHERE state = 'open' AND object = $1 AND source_system = $2 \
                         AND source_id = $3 AND ($4 IS NULL OR target_system = $4) \
                         AND ($5 IS NULL OR id <> $5) ORDER BY id LIMIT 1"
                    ))
                    .bind(object.as_str())
                    .bind(system.as_str())
                    .bind(id)
                    .bind(target.map(|t| t.as_str()))
                    .bind(except.map(|i| i.0))
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(q("reading intents"))?;
                    row.map(IntentRow::into_intent).transpose()
                }

                /// Why the new pair `link` cannot be written, if it cannot (see
                /// [`LinkChange::Insert`]); `own` is the intent the outcome resolves.
                async fn insert_blocker(
                    conn: &mut $conn,
                    link: &Link,
                    own: Option<IntentId>,
                ) -> Result<Option<String>, StoreError> {
                    let object = link.object;
                    if let Some(l) = Self::link_in(conn, object, System::HubSpot, &link.hubspot_id).await?
                        && l.accelo_id != link.accelo_id
                    {
                        return Ok(Some(format!(
                            "hubspot `{}` was linked meanwhile to accelo `{}`",
                            l.hubspot_id, l.accelo_id
                        )));
                    }
                    if let Some(l) = Self::link_in(conn, object, System::Accelo, &link.accelo_id).await?
                        && l.hubspot_id != link.hubspot_id
                    {
                        return Ok(Some(format!(
                            "accelo `{}` is already linked to hubspot `{}`",
                            l.accelo_id, l.hubspot_id
                        )));
                    }
                    for (system, id) in [
                        (System::HubSpot, link.hubspot_id.as_str()),
                        (System::Accelo, link.accelo_id.as_str()),
                    ] {
                        if let Some(i) = Self::open_intent_in(conn, object, system, id, None, own).await? {
                            let by = i.job.map(|j| format!(" (job {j})")).unwrap_or_default();
                            return Ok(Some(format!(
                                "another run{by} is creating a copy of {system} `{id}` in {}",
                                i.target
                            )));
                        }
                    }
                    Ok(None)
                }

                async fn upsert_link_in(
                    conn: &mut $conn,
                    link: &Link,
                    now: i64,
                ) -> Result<(), UpsertFailure> {
                    sqlx::query(
                        "INSERT INTO links (object, hubspot_id, accelo_id, affiliation_id, \
                         last_synced, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (object, hubspot_id) DO UPDATE SET \
                         accelo_id = excluded.accelo_id, affiliation_id = excluded.affiliation_id, \
                         last_synced = excluded.last_synced, updated_at = excluded.updated_at",
                    )
                    .bind(link.object.as_str())
                    .bind(&link.hubspot_id)
                    .bind(&link.accelo_id)
                    .bind(link.affiliation_id.as_deref())
                    .bind(Json(&link.last_synced))
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            UpsertFailure::Conflict
                        } else {
                            UpsertFailure::Sql(e)
                        }
                    })
                }

                /// The error for a link that collided with another, describing the one in the way.
                async fn link_conflict(&self, link: &Link) -> StoreError {
                    use $crate::store::Store as _;
                    let other = self.link(link.object, System::Accelo, &link.accelo_id).await;
                    let existing = match other {
                        Ok(Some(other)) => format!(
                            "accelo `{}` is already linked to hubspot `{}`",
                            other.accelo_id, other.hubspot_id
                        ),
                        Ok(None) => {
                            "another link was written at the same time; try again".to_string()
                        }
                        Err(e) => return e,
                    };
                    StoreError::LinkConflict {
                        object: link.object,
                        hubspot_id: link.hubspot_id.clone(),
                        accelo_id: link.accelo_id.clone(),
                        existing,
                    }
                }

                /// Queues `job` inside a write transaction (coalescing on its key).
                async fn enqueue_in(
                    conn: &mut $conn,
                    job: &NewJob,
                    now: i64,
                ) -> Result<Enqueued, StoreError> {
                    let run_after = job
                        .run_after
                        .map(|t| t.timestamp_millis())
                        .unwrap_or(now);
                    // A queued job with the key can be claimed between our insert and our look-up;
                    // then the insert succeeds on the next round.
                    for _ in 0..3 {
                        let id: Option<i64> = sqlx::query_scalar(
                            "INSERT INTO jobs (kind, payload, state, coalesce_key, created_at, \
                             run_after) VALUES ($1, $2, 'queued', $3, $4, $5) \
                             ON CONFLICT (coalesce_key) \
                             WHERE state = 'queued' AND coalesce_key IS NOT NULL DO NOTHING \
                             RETURNING id",
                        )
                        .bind(job.kind.as_str())
                        .bind(Json(&job.payload))
                        .bind(job.coalesce_key.as_deref())
                        .bind(now)
                        .bind(run_after)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(q("queueing a job"))?;
                        if let Some(id) = id {
                            return Ok(Enqueued {
                                id: JobId(id),
                                created: true,
                            });
                        }
                        let existing: Option<i64> = sqlx::query_scalar(
                            "SELECT id FROM jobs WHERE coalesce_key = $1 AND state = 'queued'",
                        )
                        .bind(job.coalesce_key.as_deref())
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(q("looking up a queued job"))?;
                        if let Some(id) = existing {
                            return Ok(Enqueued {
                                id: JobId(id),
                                created: false,
                            });
                        }
                    }
                    Err(StoreError::Invalid(format!(
                        "could not queue a job with key `{}`: it kept changing",
                        job.coalesce_key.as_deref().unwrap_or_default()
                    )))
                }

                /// Stores one event unless it is a redelivery, inside a write transaction: its
                /// id, and whether it is new.
                async fn insert_event_in(
                    conn: &mut $conn,
                    event: &NewEvent,
                    now: i64,
                ) -> Result<(EventId, bool), StoreError> {
                    let id: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO events (source, dedup_key, object, record_id, payload, \
                         received_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (source, dedup_key) DO NOTHING RETURNING id",
                    )
                    .bind(event.source.as_str())
                    .bind(&event.dedup_key)
                    .bind(event.object.map(|o| o.as_str()))
                    .bind(event.record_id.as_deref())
                    .bind(Json(&event.payload))
                    .bind(now)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(q("storing an event"))?;
                    if let Some(id) = id {
                        return Ok((EventId(id), true));
                    }
                    let existing: i64 = sqlx::query_scalar(
                        "SELECT id FROM events WHERE source = $1 AND dedup_key = $2",
                    )
                    .bind(event.source.as_str())
                    .bind(&event.dedup_key)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(q("looking up an event"))?;
                    Ok((EventId(existing), false))
                }

                /// Stores a batch of events and queues or joins their jobs, inside one write
                /// transaction, taking its locks in one order whatever the batch's order: first
                /// the events by (source, dedup key), then the jobs by coalescing key. Two
                /// batches naming the same records in different orders then wait for each other
                /// instead of deadlocking. The answers are in the batch's order.
                async fn accept_events_in(
                    conn: &mut $conn,
                    events: &[(NewEvent, Option<NewJob>)],
                    now: i64,
                ) -> Result<Vec<AcceptedEvent>, StoreError> {
                    let mut order: Vec<usize> = (0..events.len()).collect();
                    // Stable: of two copies of one event in a batch, the first one is the new one.
                    order.sort_by(|&a, &b| {
                        let (ea, eb) = (&events[a].0, &events[b].0);
                        (ea.source.as_str(), ea.dedup_key.as_str())
                            .cmp(&(eb.source.as_str(), eb.dedup_key.as_str()))
                    });
                    let mut stored: Vec<Option<(EventId, bool)>> = vec![None; events.len()];
                    for &i in &order {
                        stored[i] = Some(Self::insert_event_in(&mut *conn, &events[i].0, now).await?);
                    }
                    let mut with_jobs: Vec<usize> = (0..events.len())
                        .filter(|&i| {
                            events[i].1.is_some() && stored[i].is_some_and(|(_, new)| new)
                        })
                        .collect();
                    with_jobs.sort_by(|&a, &b| {
                        let key = |i: usize| events[i].1.as_ref().and_then(|j| j.coalesce_key.as_deref());
                        key(a).cmp(&key(b))
                    });
                    let mut queued: Vec<Option<Enqueued>> = vec![None; events.len()];
                    for &i in &with_jobs {
                        let Some(job) = events[i].1.as_ref() else { continue };
                        queued[i] = Some(Self::enqueue_in(&mut *conn, job, now).await?);
                    }
                    let mut accepted = Vec::with_capacity(events.len());
                    for (i, slot) in stored.into_iter().enumerate() {
                        let Some((id, new)) = slot else {
                            return Err(StoreError::Corrupt("an event of the batch was not stored".into()));
                        };
                        let job = queued[i];
                        if let Some(job) = &job {
                            sqlx::query("UPDATE events SET job_id = $2 WHERE id = $1")
                                .bind(id.0)
                                .bind(job.id.0)
                                .execute(&mut *conn)
                                .await
                                .map_err(q("attaching an event to its job"))?;
                        }
                        accepted.push(AcceptedEvent { id, new, job });
                    }
                    Ok(accepted)
                }

                /// The error for a lease check that matched no row.
                async fn lease_error(&self, id: JobId, owner: &str) -> StoreError {
                    let row: Result<Option<LeaseRow>, _> =
                        sqlx::query_as("SELECT state, lease_owner FROM jobs WHERE id = $1")
                            .bind(id.0)
                            .fetch_optional(&self.pool)
                            .await;
                    match row {
                        Ok(None) => StoreError::NoSuchJob(id),
                        Ok(Some(row)) => StoreError::LeaseLost {
                            job: id,
                            owner: owner.to_string(),
                            state: row.describe(),
                        },
                        Err(e) => q("checking a job's lease")(e),
                    }
                }

                /// Appends a log entry inside a write transaction that has taken the log lock.
                async fn append_in(
                    conn: &mut $conn,
                    job: Option<JobId>,
                    body: &$crate::store::LogBody,
                    now: i64,
                ) -> Result<LogId, sqlx::Error> {
                    let body = body.scrubbed();
                    let c = LogColumns::of(&body);
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO sync_log (at, job_id, kind, object, source_system, source_id, \
                         target_system, target_id, outcome, body) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    )
                    .bind(now)
                    .bind(job.map(|j| j.0))
                    .bind(c.kind)
                    .bind(c.object)
                    .bind(c.source_system)
                    .bind(c.source_id)
                    .bind(c.target_system)
                    .bind(c.target_id)
                    .bind(c.outcome)
                    .bind(Json(&body))
                    .fetch_one(&mut *conn)
                    .await?;
                    Ok(LogId(id))
                }

                /// Writes outcomes in one transaction (run again after a transient abort).
                async fn write_outcomes(
                    &self,
                    outcomes: &[RecordOutcome],
                ) -> Result<Vec<LogId>, StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("writing record outcomes", move || async move {
                        this.write_outcomes_once(outcomes).await
                    })
                    .await
                }

                async fn write_outcomes_once(
                    &self,
                    outcomes: &[RecordOutcome],
                ) -> Result<Vec<LogId>, StoreError> {
                    for o in outcomes {
                        if let LinkChange::Upsert(link) | LinkChange::Insert(link) = &o.link {
                            if link.object != o.entry.object {
                                return Err(StoreError::Invalid(format!(
                                    "a {} outcome cannot change a {} link",
                                    o.entry.object, link.object
                                )));
                            }
                        }
                    }
                    let now = now_ms();
                    let mut tx = self
                        .begin_write()
                        .await
                        .map_err(q("starting a transaction"))?;
                    Self::lock_log(&mut tx).await.map_err(q("locking the sync log"))?;
                    let mut ids = Vec::with_capacity(outcomes.len());
                    for o in outcomes {
                        match &o.link {
                            LinkChange::Keep => {}
                            LinkChange::Upsert(link) => {
                                match Self::upsert_link_in(&mut tx, link, now).await {
                                    Ok(()) => {}
                                    Err(UpsertFailure::Sql(e)) => {
                                        return Err(q("writing a link")(e));
                                    }
                                    Err(UpsertFailure::Conflict) => {
                                        let _ = tx.rollback().await;
                                        return Err(self.link_conflict(link).await);
                                    }
                                }
                            }
                            LinkChange::Insert(link) => {
                                if let Some(why) =
                                    Self::insert_blocker(&mut tx, link, o.resolve_intent).await?
                                {
                                    let _ = tx.rollback().await;
                                    return Err(StoreError::LinkConflict {
                                        object: link.object,
                                        hubspot_id: link.hubspot_id.clone(),
                                        accelo_id: link.accelo_id.clone(),
                                        existing: why,
                                    });
                                }
                                match Self::upsert_link_in(&mut tx, link, now).await {
                                    Ok(()) => {}
                                    Err(UpsertFailure::Sql(e)) => {
                                        return Err(q("writing a link")(e));
                                    }
                                    Err(UpsertFailure::Conflict) => {
                                        let _ = tx.rollback().await;
                                        return Err(self.link_conflict(link).await);
                                    }
                                }
                            }
                            LinkChange::Remove(system, id) => {
                                Self::delete_link_in(&mut tx, o.entry.object, *system, id)
                                    .await
                                    .map_err(q("deleting a link"))?;
                            }
                        }
                        if let Some(intent) = o.resolve_intent {
                            let created = o.entry.target.id.as_deref();
                            Self::resolve_intent_in(&mut tx, intent, created, now)
                                .await
                                .map_err(q("resolving an intent"))?;
                        }
                        let body = $crate::store::LogBody::Record(o.entry.clone());
                        let id = Self::append_in(&mut tx, o.job, &body, now)
                            .await
                            .map_err(q("appending to the sync log"))?;
                        ids.push(id);
                    }
                    tx.commit().await.map_err(q("committing record outcomes"))?;
                    Ok(ids)
                }

                async fn delete_link_in(
                    conn: &mut $conn,
                    object: Object,
                    system: System,
                    id: &str,
                ) -> Result<u64, sqlx::Error> {
                    let sql = match system {
                        System::HubSpot => {
                            "DELETE FROM links WHERE object = $1 AND hubspot_id = $2"
                        }
                        System::Accelo => "DELETE FROM links WHERE object = $1 AND accelo_id = $2",
                    };
                    let done = sqlx::query(sql)
                        .bind(object.as_str())
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    Ok(done.rows_affected())
                }

                async fn resolve_intent_in(
                    conn: &mut $conn,
                    id: IntentId,
                    created_id: Option<&str>,
                    now: i64,
                ) -> Result<bool, sqlx::Error> {
                    let state = if created_id.is_some() {
                        "resolved"
                    } else {
                        "abandoned"
                    };
                    let done = sqlx::query(
                        "UPDATE intents SET state = $2, created_id = $3, resolved_at = $4 \
                         WHERE id = $1 AND state = 'open'",
                    )
                    .bind(id.0)
                    .bind(state)
                    .bind(created_id)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                /// Runs a lease-checked update of a running job.
                async fn leased_update<'a>(
                    &self,
                    query: sqlx::query::Query<'a, $db, <$db as sqlx::Database>::Arguments>,
                    id: JobId,
                    owner: &str,
                    op: &'static str,
                ) -> Result<(), StoreError> {
                    let done = query.execute(&self.pool).await.map_err(q(op))?;
                    if done.rows_affected() == 1 {
                        Ok(())
                    } else {
                        Err(self.lease_error(id, owner).await)
                    }
                }
            }

            /// The transactions behind the `Store` methods that retry transient aborts.
            impl $ty {
                async fn enqueue_once(&self, job: &NewJob) -> Result<Enqueued, StoreError> {
                    let mut tx = self
                        .begin_write()
                        .await
                        .map_err(q("starting a transaction"))?;
                    let queued = Self::enqueue_in(&mut tx, job, now_ms()).await?;
                    tx.commit().await.map_err(q("committing a queued job"))?;
                    Ok(queued)
                }

                async fn claim_next_once(
                    &self,
                    owner: &str,
                    kinds: &[JobKind],
                    lease: std::time::Duration,
                ) -> Result<Option<Job>, StoreError> {
                    let kinds: Vec<&str> = if kinds.is_empty() {
                        JobKind::ALL.iter().map(|k| k.as_str()).collect()
                    } else {
                        kinds.iter().map(|k| k.as_str()).collect()
                    };
                    let now = now_ms();
                    let mut tx = self
                        .begin_write()
                        .await
                        .map_err(q("starting a transaction"))?;
                    let row: Option<JobRow> = sqlx::query_as(Self::CLAIM_NEXT)
                        .bind(Json(&kinds))
                        .bind(owner)
                        .bind(ms_after(now, lease))
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(q("claiming a job"))?;
                    tx.commit().await.map_err(q("committing a claim"))?;
                    row.map(JobRow::into_job).transpose()
                }

                async fn claim_once(
                    &self,
                    id: JobId,
                    owner: &str,
                    lease: std::time::Duration,
                ) -> Result<Option<Job>, StoreError> {
                    let now = now_ms();
                    let row: Option<JobRow> = sqlx::query_as(concat!(
                        claim_set!(),
                        "WHERE id = $1 AND ",
                        claimable!(),
                        " RETURNING ",
                        job_columns!()
                    ))
                    .bind(id.0)
                    .bind(owner)
                    .bind(ms_after(now, lease))
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(q("claiming a job"))?;
                    row.map(JobRow::into_job).transpose()
                }

                async fn take_over_once(
                    &self,
                    id: JobId,
                    dead_owner: &str,
                    owner: &str,
                    lease: std::time::Duration,
                ) -> Result<Option<Job>, StoreError> {
                    let now = now_ms();
                    let row: Option<JobRow> = sqlx::query_as(concat!(
                        claim_set!(),
                        "WHERE id = $1 AND state = 'running' AND lease_owner = $5 RETURNING ",
                        job_columns!()
                    ))
                    .bind(id.0)
                    .bind(owner)
                    .bind(ms_after(now, lease))
                    .bind(now)
                    .bind(dead_owner)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(q("taking a job over"))?;
                    row.map(JobRow::into_job).transpose()
                }

                async fn release_once(
                    &self,
                    id: JobId,
                    owner: &str,
                    retry_after: Option<std::time::Duration>,
                ) -> Result<JobId, StoreError> {
                    for _ in 0..3 {
                        let now = now_ms();
                        let mut tx = self
                            .begin_write()
                            .await
                            .map_err(q("starting a transaction"))?;
                        let key: Option<Option<String>> = sqlx::query_scalar(
                            "SELECT coalesce_key FROM jobs \
                             WHERE id = $1 AND state = 'running' AND lease_owner = $2",
                        )
                        .bind(id.0)
                        .bind(owner)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(q("releasing a job"))?;
                        let Some(key) = key else {
                            drop(tx);
                            return Err(self.lease_error(id, owner).await);
                        };
                        let other: Option<i64> = match &key {
                            None => None,
                            Some(key) => sqlx::query_scalar(
                                "SELECT id FROM jobs WHERE coalesce_key = $1 AND state = 'queued'",
                            )
                            .bind(key)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(q("releasing a job"))?,
                        };
                        if let Some(other) = other {
                            sqlx::query(
                                "UPDATE jobs SET state = 'cancelled', lease_expires_at = NULL, \
                                 finished_at = $2, error = $3 WHERE id = $1",
                            )
                            .bind(id.0)
                            .bind(now)
                            .bind(format!("superseded by job {other}"))
                            .execute(&mut *tx)
                            .await
                            .map_err(q("releasing a job"))?;
                            sqlx::query(
                                "UPDATE events SET job_id = $2 \
                                 WHERE job_id = $1 AND processed_at IS NULL",
                            )
                            .bind(id.0)
                            .bind(other)
                            .execute(&mut *tx)
                            .await
                            .map_err(q("moving events to another job"))?;
                            tx.commit().await.map_err(q("committing a release"))?;
                            return Ok(JobId(other));
                        }
                        let run_after = retry_after.map(|d| ms_after(now, d)).unwrap_or(now);
                        let done = sqlx::query(
                            "UPDATE jobs SET state = 'queued', lease_owner = NULL, \
                             lease_expires_at = NULL, run_after = $2 WHERE id = $1",
                        )
                        .bind(id.0)
                        .bind(run_after)
                        .execute(&mut *tx)
                        .await;
                        match done {
                            Ok(_) => {
                                tx.commit().await.map_err(q("committing a release"))?;
                                return Ok(id);
                            }
                            // A job with the same key was queued meanwhile: go round again.
                            Err(e) if is_unique_violation(&e) => {
                                let _ = tx.rollback().await;
                            }
                            Err(e) => return Err(q("releasing a job")(e)),
                        }
                    }
                    Err(StoreError::Invalid(format!(
                        "could not release job `{id}`: its coalescing key kept changing"
                    )))
                }

                async fn finish_once(
                    &self,
                    id: JobId,
                    owner: &str,
                    end: &JobEnd,
                ) -> Result<(), StoreError> {
                    let (state, error) = match end {
                        JobEnd::Succeeded => ("succeeded", None),
                        JobEnd::Failed(e) => (
                            "failed",
                            Some($crate::store::redact::scrub(e).into_owned()),
                        ),
                    };
                    let now = now_ms();
                    let mut tx = self
                        .begin_write()
                        .await
                        .map_err(q("starting a transaction"))?;
                    let done = sqlx::query(
                        "UPDATE jobs SET state = $3, error = $4, finished_at = $5, \
                         lease_expires_at = NULL \
                         WHERE id = $1 AND state = 'running' AND lease_owner = $2",
                    )
                    .bind(id.0)
                    .bind(owner)
                    .bind(state)
                    .bind(error)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("finishing a job"))?;
                    if done.rows_affected() != 1 {
                        drop(tx);
                        return Err(self.lease_error(id, owner).await);
                    }
                    sqlx::query(
                        "UPDATE events SET processed_at = $2 \
                         WHERE job_id = $1 AND processed_at IS NULL",
                    )
                    .bind(id.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("marking events processed"))?;
                    tx.commit().await.map_err(q("committing a finished job"))?;
                    Ok(())
                }

                async fn cancel_once(&self, id: JobId) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE jobs SET state = 'cancelled', finished_at = $2, \
                         lease_expires_at = NULL WHERE id = $1 AND state IN ('queued', 'running')",
                    )
                    .bind(id.0)
                    .bind(now_ms())
                    .execute(&self.pool)
                    .await
                    .map_err(q("cancelling a job"))?;
                    if done.rows_affected() == 1 {
                        return Ok(true);
                    }
                    match $crate::store::Store::job(self, id).await? {
                        Some(_) => Ok(false),
                        None => Err(StoreError::NoSuchJob(id)),
                    }
                }

                async fn append_log_once(&self, entry: &NewLogEntry) -> Result<LogId, StoreError> {
                    let mut tx = self
                        .begin_write()
                        .await
                        .map_err(q("starting a transaction"))?;
                    Self::lock_log(&mut tx).await.map_err(q("locking the sync log"))?;
                    let id = Self::append_in(&mut tx, entry.job, &entry.body, now_ms())
                        .await
                        .map_err(q("appending to the sync log"))?;
                    tx.commit().await.map_err(q("committing a log entry"))?;
                    Ok(id)
                }

                async fn open_intent_once(
                    &self,
                    intent: &NewIntent,
                ) -> Result<IntentOpened, StoreError> {
                    let src = &intent.source;
                    let mut tx = self
                        .begin_write()
                        .await
                        .map_err(q("starting a transaction"))?;
                    // Serialises with outcome writes (links) on PostgreSQL too.
                    Self::lock_log(&mut tx).await.map_err(q("locking the sync log"))?;
                    if let Some(link) = Self::link_in(&mut tx, src.object, src.system, &src.id).await? {
                        let _ = tx.rollback().await;
                        return Ok(IntentOpened::Linked(link));
                    }
                    if let Some(held) = Self::open_intent_in(
                        &mut tx,
                        src.object,
                        src.system,
                        &src.id,
                        Some(intent.target),
                        None,
                    )
                    .await?
                    {
                        let _ = tx.rollback().await;
                        return Ok(IntentOpened::Held(held));
                    }
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO intents (job_id, object, source_system, source_id, \
                         target_system, dedup, state, opened_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7) RETURNING id",
                    )
                    .bind(intent.job.map(|j| j.0))
                    .bind(src.object.as_str())
                    .bind(src.system.as_str())
                    .bind(&src.id)
                    .bind(intent.target.as_str())
                    .bind(Json(&intent.dedup))
                    .bind(now_ms())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(q("recording an intent"))?;
                    tx.commit().await.map_err(q("committing an intent"))?;
                    Ok(IntentOpened::Opened(IntentId(id)))
                }

                async fn remember_echoes_once(
                    &self,
                    echoes: &[Echo],
                    ttl: std::time::Duration,
                ) -> Result<(), StoreError> {
                    if echoes.is_empty() {
                        return Ok(());
                    }
                    let now = now_ms();
                    let expires = ms_after(now, ttl);
                    let mut tx = self
                        .begin_write()
                        .await
                        .map_err(q("starting a transaction"))?;
                    for echo in echoes {
                        sqlx::query(
                            "INSERT INTO echoes (system, object, record_id, field, value_hash, \
                             written_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        )
                        .bind(echo.system.as_str())
                        .bind(echo.object.as_str())
                        .bind(&echo.id)
                        .bind(&echo.field)
                        .bind(echo.value_hash())
                        .bind(now)
                        .bind(expires)
                        .execute(&mut *tx)
                        .await
                        .map_err(q("remembering a write"))?;
                    }
                    tx.commit().await.map_err(q("committing echoes"))?;
                    Ok(())
                }

                async fn consume_echo_once(&self, echo: &Echo) -> Result<bool, StoreError> {
                    let id: Option<i64> = sqlx::query_scalar(Self::CONSUME_ECHO)
                        .bind(echo.system.as_str())
                        .bind(echo.object.as_str())
                        .bind(&echo.id)
                        .bind(&echo.field)
                        .bind(echo.value_hash())
                        .bind(now_ms())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(q("checking for an echo"))?;
                    Ok(id.is_some())
                }

                async fn accept_events_once(
                    &self,
                    events: &[(NewEvent, Option<NewJob>)],
                ) -> Result<Vec<AcceptedEvent>, StoreError> {
                    if events.is_empty() {
                        return Ok(Vec::new());
                    }
                    let now = now_ms();
                    let mut tx = self
                        .begin_write()
                        .await
                        .map_err(q("starting a transaction"))?;
                    let accepted = Self::accept_events_in(&mut tx, events, now).await?;
                    tx.commit().await.map_err(q("committing events"))?;
                    Ok(accepted)
                }

                async fn settle_events_once(&self, ids: &[EventId]) -> Result<u64, StoreError> {
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    let now = now_ms();
                    let mut tx = self
                        .begin_write()
                        .await
                        .map_err(q("starting a transaction"))?;
                    // In id order, so that two settlements never wait for each other in a cycle.
                    let mut ids = ids.to_vec();
                    ids.sort_by_key(|id| id.0);
                    ids.dedup();
                    let mut settled = 0;
                    for id in ids {
                        let done = sqlx::query(
                            "UPDATE events SET processed_at = $2 \
                             WHERE id = $1 AND job_id IS NULL AND processed_at IS NULL",
                        )
                        .bind(id.0)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(q("settling an event"))?;
                        settled += done.rows_affected();
                    }
                    tx.commit().await.map_err(q("committing settled events"))?;
                    Ok(settled)
                }
            }

            #[async_trait::async_trait]
            impl $crate::store::Store for $ty {
                fn backend(&self) -> $crate::store::Backend {
                    $backend
                }

                fn location(&self) -> &str {
                    &self.location
                }

                async fn close(&self) {
                    self.pool.close().await;
                }

                // ----- links ------------------------------------------------------------------

                async fn link(
                    &self,
                    object: Object,
                    system: System,
                    id: &str,
                ) -> Result<Option<Link>, StoreError> {
                    let mut conn = self.pool.acquire().await.map_err(q("reading a link"))?;
                    Self::link_in(&mut conn, object, system, id).await
                }

                async fn links(&self, object: Object) -> Result<Vec<Link>, StoreError> {
                    let rows: Vec<LinkRow> = sqlx::query_as(concat!(
                        "SELECT ", link_columns!(),
                        " FROM links WHERE object = $1 ORDER BY hubspot_id"
                    ))
                    .bind(object.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q("reading links"))?;
                    rows.into_iter().map(LinkRow::into_link).collect()
                }

                async fn upsert_link(&self, link: &Link) -> Result<(), StoreError> {
                    let mut conn = self.pool.acquire().await.map_err(q("writing a link"))?;
                    match Self::upsert_link_in(&mut conn, link, now_ms()).await {
                        Ok(()) => Ok(()),
                        Err(UpsertFailure::Sql(e)) => Err(q("writing a link")(e)),
                        Err(UpsertFailure::Conflict) => {
                            drop(conn);
                            Err(self.link_conflict(link).await)
                        }
                    }
                }

                async fn delete_link(
                    &self,
                    object: Object,
                    system: System,
                    id: &str,
                ) -> Result<bool, StoreError> {
                    let mut conn = self.pool.acquire().await.map_err(q("deleting a link"))?;
                    let n = Self::delete_link_in(&mut conn, object, system, id)
                        .await
                        .map_err(q("deleting a link"))?;
                    Ok(n > 0)
                }

                async fn delete_link_pair(
                    &self,
                    object: Object,
                    hubspot_id: &str,
                    accelo_id: &str,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "DELETE FROM links WHERE object = $1 AND hubspot_id = $2 AND accelo_id = $3",
                    )
                    .bind(object.as_str())
                    .bind(hubspot_id)
                    .bind(accelo_id)
                    .execute(&self.pool)
                    .await
                    .map_err(q("deleting a link"))?;
                    Ok(done.rows_affected() > 0)
                }

                // ----- jobs -------------------------------------------------------------------

                async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("enqueue", move || async move { this.enqueue_once(job).await }).await
                }

                async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
                    let row: Option<JobRow> = sqlx::query_as(concat!(
                        "SELECT ", job_columns!(), " FROM jobs WHERE id = $1"
                    ))
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(q("reading a job"))?;
                    row.map(JobRow::into_job).transpose()
                }

                async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(concat!(
                        "SELECT ", job_columns!(), " FROM jobs WHERE 1 = 1"
                    ));
                    if !filter.states.is_empty() {
                        qb.push(" AND state IN (");
                        let mut list = qb.separated(", ");
                        for s in &filter.states {
                            list.push_bind(s.as_str());
                        }
                        qb.push(")");
                    }
                    if !filter.kinds.is_empty() {
                        qb.push(" AND kind IN (");
                        let mut list = qb.separated(", ");
                        for k in &filter.kinds {
                            list.push_bind(k.as_str());
                        }
                        qb.push(")");
                    }
                    qb.push(" ORDER BY id DESC");
                    if let Some(limit) = filter.limit {
                        qb.push(" LIMIT ").push_bind(i64::from(limit));
                    }
                    let rows: Vec<JobRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(q("listing jobs"))?;
                    rows.into_iter().map(JobRow::into_job).collect()
                }

                async fn claim_next(
                    &self,
                    owner: &str,
                    kinds: &[JobKind],
                    lease: std::time::Duration,
                ) -> Result<Option<Job>, StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("claim next", move || async move { this.claim_next_once(owner, kinds, lease).await }).await
                }

                async fn claim(
                    &self,
                    id: JobId,
                    owner: &str,
                    lease: std::time::Duration,
                ) -> Result<Option<Job>, StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("claim", move || async move { this.claim_once(id, owner, lease).await }).await
                }

                async fn take_over(
                    &self,
                    id: JobId,
                    dead_owner: &str,
                    owner: &str,
                    lease: std::time::Duration,
                ) -> Result<Option<Job>, StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("take over", move || async move { this.take_over_once(id, dead_owner, owner, lease).await }).await
                }

                async fn heartbeat(
                    &self,
                    id: JobId,
                    owner: &str,
                    lease: std::time::Duration,
                ) -> Result<(), StoreError> {
                    let query = sqlx::query(
                        "UPDATE jobs SET lease_expires_at = $3 \
                         WHERE id = $1 AND state = 'running' AND lease_owner = $2",
                    )
                    .bind(id.0)
                    .bind(owner.to_string())
                    .bind(ms_after(now_ms(), lease));
                    self.leased_update(query, id, owner, "extending a lease").await
                }

                async fn set_progress(
                    &self,
                    id: JobId,
                    owner: &str,
                    done: u64,
                    total: Option<u64>,
                ) -> Result<(), StoreError> {
                    let query = sqlx::query(
                        "UPDATE jobs SET progress_done = $3, progress_total = $4 \
                         WHERE id = $1 AND state = 'running' AND lease_owner = $2",
                    )
                    .bind(id.0)
                    .bind(owner.to_string())
                    .bind(signed(done))
                    .bind(total.map(signed));
                    self.leased_update(query, id, owner, "recording progress").await
                }

                async fn save_checkpoint(
                    &self,
                    id: JobId,
                    owner: &str,
                    checkpoint: &serde_json::Value,
                ) -> Result<(), StoreError> {
                    let query = sqlx::query(
                        "UPDATE jobs SET checkpoint = $3 \
                         WHERE id = $1 AND state = 'running' AND lease_owner = $2",
                    )
                    .bind(id.0)
                    .bind(owner.to_string())
                    .bind(Json(checkpoint.clone()));
                    self.leased_update(query, id, owner, "saving a checkpoint").await
                }

                async fn release(
                    &self,
                    id: JobId,
                    owner: &str,
                    retry_after: Option<std::time::Duration>,
                ) -> Result<JobId, StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("release", move || async move { this.release_once(id, owner, retry_after).await }).await
                }

                async fn finish(
                    &self,
                    id: JobId,
                    owner: &str,
                    end: &JobEnd,
                ) -> Result<(), StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("finish", move || async move { this.finish_once(id, owner, end).await }).await
                }

                async fn cancel(&self, id: JobId) -> Result<bool, StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("cancel", move || async move { this.cancel_once(id).await }).await
                }

                // ----- sync log ---------------------------------------------------------------

                async fn append_log(&self, entry: &NewLogEntry) -> Result<LogId, StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("append log", move || async move { this.append_log_once(entry).await }).await
                }

                async fn record_outcome(
                    &self,
                    outcome: &RecordOutcome,
                ) -> Result<LogId, StoreError> {
                    let ids = self.write_outcomes(std::slice::from_ref(outcome)).await?;
                    ids.into_iter().next().ok_or_else(|| {
                        StoreError::Corrupt("writing a record outcome returned no log id".into())
                    })
                }

                async fn record_outcomes(
                    &self,
                    outcomes: &[RecordOutcome],
                ) -> Result<Vec<LogId>, StoreError> {
                    if outcomes.is_empty() {
                        return Ok(Vec::new());
                    }
                    self.write_outcomes(outcomes).await
                }

                async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT id, at, job_id, body FROM sync_log WHERE 1 = 1",
                    );
                    if let Some(job) = query.job {
                        qb.push(" AND job_id = ").push_bind(job.0);
                    }
                    if let Some(since) = query.since {
                        qb.push(" AND at >= ").push_bind(since.timestamp_millis());
                    }
                    if let Some(after) = query.after {
                        qb.push(" AND id > ").push_bind(after.0);
                    }
                    if let Some(before) = query.before {
                        qb.push(" AND id < ").push_bind(before.0);
                    }
                    if let Some(key) = &query.record {
                        qb.push(" AND ((source_system = ")
                            .push_bind(key.system.as_str())
                            .push(" AND object = ")
                            .push_bind(key.object.as_str())
                            .push(" AND source_id = ")
                            .push_bind(key.id.clone())
                            .push(") OR (target_system = ")
                            .push_bind(key.system.as_str())
                            .push(" AND object = ")
                            .push_bind(key.object.as_str())
                            .push(" AND target_id = ")
                            .push_bind(key.id.clone())
                            .push("))");
                    }
                    if let Some(object) = query.object {
                        qb.push(" AND object = ").push_bind(object.as_str());
                    }
                    if let Some(system) = query.system {
                        qb.push(" AND (source_system = ")
                            .push_bind(system.as_str())
                            .push(" OR target_system = ")
                            .push_bind(system.as_str())
                            .push(")");
                    }
                    if !query.outcomes.is_empty() {
                        qb.push(" AND outcome IN (");
                        let mut sep = qb.separated(", ");
                        for o in &query.outcomes {
                            sep.push_bind(o.as_str());
                        }
                        qb.push(")");
                    }
                    if let Some(text) = query.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                        let escaped: String = text
                            .to_lowercase()
                            .chars()
                            .flat_map(|c| match c {
                                '%' | '_' | '\\' => vec!['\\', c],
                                c => vec![c],
                            })
                            .collect();
                        let body = match $backend {
                            $crate::store::Backend::Postgres => "LOWER(body::text)",
                            $crate::store::Backend::Sqlite => "LOWER(body)",
                        };
                        qb.push(" AND (source_id = ")
                            .push_bind(text.to_string())
                            .push(" OR target_id = ")
                            .push_bind(text.to_string())
                            .push(" OR ")
                            .push(body)
                            .push(" LIKE ")
                            .push_bind(format!("%{escaped}%"))
                            .push(" ESCAPE '\\')");
                    }
                    let limit = query.last.or(query.limit);
                    qb.push(if query.last.is_some() {
                        " ORDER BY id DESC"
                    } else {
                        " ORDER BY id ASC"
                    });
                    if let Some(limit) = limit {
                        qb.push(" LIMIT ").push_bind(i64::from(limit));
                    }
                    let mut rows: Vec<LogRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(q("reading the sync log"))?;
                    if query.last.is_some() {
                        rows.reverse();
                    }
                    rows.into_iter().map(LogRow::into_entry).collect()
                }

                async fn last_event_at(
                    &self,
                    source: System,
                ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
                    let (at,): (Option<i64>,) = sqlx::query_as(
                        "SELECT MAX(received_at) FROM events WHERE source = $1",
                    )
                    .bind(source.as_str())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(q("reading the last event"))?;
                    Ok(at.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis))
                }

                async fn health(&self) -> Result<Vec<$crate::store::ObjectHealth>, StoreError> {
                    let links: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT object, COUNT(*) FROM links GROUP BY object",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q("counting links"))?;
                    // A record's last attempt: its newest record entry as a source. Only record
                    // entries have a source, so the newer-entry probe reads `sync_log_source`
                    // alone, once per failed entry (found through `sync_log_outcome`), rather
                    // than grouping the whole log.
                    let failing: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT f.object, COUNT(*) FROM sync_log f \
                         WHERE f.outcome = 'failed' AND f.kind = 'record' AND NOT EXISTS ( \
                           SELECT 1 FROM sync_log n WHERE n.source_system = f.source_system \
                           AND n.object = f.object AND n.source_id = f.source_id \
                           AND n.id > f.id) \
                         GROUP BY f.object",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q("counting failing records"))?;
                    let count = |rows: &[(String, i64)], o: Object| {
                        rows.iter()
                            .find(|(name, _)| name == o.as_str())
                            .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
                    };
                    Ok([Object::Company, Object::Contact]
                        .into_iter()
                        .map(|object| $crate::store::ObjectHealth {
                            object,
                            linked: count(&links, object),
                            failing: count(&failing, object),
                        })
                        .collect())
                }

                async fn count_skipped(
                    &self,
                    job: JobId,
                    reason: &str,
                ) -> Result<Vec<(Object, u64)>, StoreError> {
                    let sql = match $backend {
                        $crate::store::Backend::Postgres => {
                            "SELECT object, COUNT(*) FROM sync_log WHERE job_id = $1 \
                             AND outcome = 'skipped' AND kind = 'record' \
                             AND strpos(body->>'reason', $2) > 0 GROUP BY object"
                        }
                        $crate::store::Backend::Sqlite => {
                            "SELECT object, COUNT(*) FROM sync_log WHERE job_id = $1 \
                             AND outcome = 'skipped' AND kind = 'record' \
                             AND instr(json_extract(body, '$.reason'), $2) > 0 GROUP BY object"
                        }
                    };
                    let rows: Vec<(String, i64)> = sqlx::query_as(sql)
                    .bind(job.0)
                    .bind(reason)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q("counting skipped records"))?;
                    Ok(rows
                        .into_iter()
                        .filter_map(|(o, n)| {
                            Some((o.parse::<Object>().ok()?, u64::try_from(n).unwrap_or(0)))
                        })
                        .collect())
                }

                async fn save_rule_version(
                    &self,
                    file: &str,
                    text: &str,
                    saved_by: &str,
                ) -> Result<i64, StoreError> {
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO rule_versions (file, text, saved_by, saved_at) \
                         VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(file)
                    .bind(text)
                    .bind(saved_by)
                    .bind(now_ms())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(q("saving a rule version"))?;
                    Ok(id)
                }

                async fn rule_versions(
                    &self,
                    file: &str,
                    limit: u32,
                ) -> Result<Vec<$crate::store::RuleVersion>, StoreError> {
                    let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
                        "SELECT id, file, text, saved_by, saved_at FROM rule_versions \
                         WHERE file = $1 ORDER BY id DESC LIMIT $2",
                    )
                    .bind(file)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q("reading rule versions"))?;
                    rows.into_iter().map(rule_version_of).collect()
                }

                async fn rule_version(
                    &self,
                    id: i64,
                ) -> Result<Option<$crate::store::RuleVersion>, StoreError> {
                    let row: Option<(i64, String, String, String, i64)> = sqlx::query_as(
                        "SELECT id, file, text, saved_by, saved_at FROM rule_versions WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(q("reading a rule version"))?;
                    row.map(rule_version_of).transpose()
                }

                // ----- intents ----------------------------------------------------------------

                async fn open_intent(
                    &self,
                    intent: &NewIntent,
                ) -> Result<IntentOpened, StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("open intent", move || async move { this.open_intent_once(intent).await }).await
                }

                async fn resolve_intent(
                    &self,
                    id: IntentId,
                    created_id: Option<&str>,
                ) -> Result<bool, StoreError> {
                    let mut conn = self.pool.acquire().await.map_err(q("resolving an intent"))?;
                    Self::resolve_intent_in(&mut conn, id, created_id, now_ms())
                        .await
                        .map_err(q("resolving an intent"))
                }

                async fn open_intents(&self) -> Result<Vec<Intent>, StoreError> {
                    let rows: Vec<IntentRow> = sqlx::query_as(concat!(
                        "SELECT ", intent_columns!(),
                        " FROM intents WHERE state = 'open' ORDER BY id"
                    ))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q("reading intents"))?;
                    rows.into_iter().map(IntentRow::into_intent).collect()
                }

                // ----- echoes -----------------------------------------------------------------

                async fn remember_echoes(
                    &self,
                    echoes: &[Echo],
                    ttl: std::time::Duration,
                ) -> Result<(), StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("remember echoes", move || async move { this.remember_echoes_once(echoes, ttl).await }).await
                }

                async fn consume_echo(&self, echo: &Echo) -> Result<bool, StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("consume echo", move || async move { this.consume_echo_once(echo).await }).await
                }

                async fn purge_expired_echoes(&self) -> Result<u64, StoreError> {
                    let done = sqlx::query("DELETE FROM echoes WHERE expires_at <= $1")
                        .bind(now_ms())
                        .execute(&self.pool)
                        .await
                        .map_err(q("purging echoes"))?;
                    Ok(done.rows_affected())
                }

                // ----- cursors ----------------------------------------------------------------

                async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
                    sqlx::query_scalar("SELECT value FROM cursors WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(q("reading a cursor"))
                }

                async fn set_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO cursors (name, value, updated_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(name)
                    .bind(value)
                    .bind(now_ms())
                    .execute(&self.pool)
                    .await
                    .map_err(q("writing a cursor"))?;
                    Ok(())
                }

                // ----- events -----------------------------------------------------------------

                async fn accept_event(
                    &self,
                    event: &NewEvent,
                    job: Option<&NewJob>,
                ) -> Result<AcceptedEvent, StoreError> {
                    let accepted = self.accept_events(&[(event.clone(), job.cloned())]).await?;
                    accepted.into_iter().next().ok_or_else(|| {
                        StoreError::Corrupt("storing an event returned nothing".into())
                    })
                }

                async fn accept_events(
                    &self,
                    events: &[(NewEvent, Option<NewJob>)],
                ) -> Result<Vec<AcceptedEvent>, StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("accept events", move || async move { this.accept_events_once(events).await }).await
                }

                async fn settle_events(&self, ids: &[EventId]) -> Result<u64, StoreError> {
                    let this = self;
                    $crate::store::retry::retry_transient("settle events", move || async move { this.settle_events_once(ids).await }).await
                }

                async fn events_for_job(&self, job: JobId) -> Result<Vec<Event>, StoreError> {
                    let rows: Vec<EventRow> = sqlx::query_as(concat!(
                        "SELECT ", event_columns!(), " FROM events WHERE job_id = $1 ORDER BY id"
                    ))
                    .bind(job.0)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q("reading events"))?;
                    rows.into_iter().map(EventRow::into_event).collect()
                }

                async fn unprocessed_events(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
                    let rows: Vec<EventRow> = sqlx::query_as(concat!(
                        "SELECT ", event_columns!(),
                        " FROM events WHERE processed_at IS NULL ORDER BY id LIMIT $1"
                    ))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q("reading events"))?;
                    rows.into_iter().map(EventRow::into_event).collect()
                }

                async fn prune_events(
                    &self,
                    before: chrono::DateTime<chrono::Utc>,
                ) -> Result<u64, StoreError> {
                    let done = sqlx::query(
                        "DELETE FROM events WHERE processed_at IS NOT NULL AND received_at < $1",
                    )
                    .bind(before.timestamp_millis())
                    .execute(&self.pool)
                    .await
                    .map_err(q("pruning events"))?;
                    Ok(done.rows_affected())
                }
            }
        }
    };
}
