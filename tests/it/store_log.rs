//! The sync log, on SQLite and PostgreSQL: entries of every kind round-trip, the queries by job,
//! record, time and id, the last-N window, secret scrubbing, and following the log while several
//! writers append (ids in commit order: a follower misses nothing).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tandem_core::model::{Direction, Object, System};
use tandem_core::plan::{Change, RecordRef};
use tandem_engine::store::testing::{TestStore, for_each_store};
use tandem_engine::store::{
    Counts, JobId, JobKind, JobState, LinkChange, LogBody, LogId, LogQuery, NewJob, NewLogEntry,
    Notice, NoticeLevel, Outcome, RecordEntry, RecordOutcome, RunFinished, RunProgress, RunStarted,
    Store, redact,
};

fn record(object: Object, source: (System, &str), target: (System, Option<&str>)) -> RecordEntry {
    RecordEntry {
        object,
        source: RecordRef {
            system: source.0,
            id: Some(source.1.into()),
        },
        target: RecordRef {
            system: target.0,
            id: target.1.map(String::from),
        },
        outcome: Outcome::Updated,
        reason: "hubspot started the sync; its values win".into(),
        changes: vec![
            Change {
                field: "name".into(),
                from: Some("Acme".into()),
                to: Some("Acme Pty Ltd".into()),
            },
            Change {
                field: "postal_address.city".into(),
                from: None,
                to: Some("Hobart".into()),
            },
        ],
        error: None,
    }
}

async fn job(store: &Arc<dyn Store>, kind: JobKind) -> JobId {
    store
        .enqueue(&NewJob::new(kind, json!(null)))
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn every_kind_of_entry_round_trips() {
    for_each_store(|store| async move {
        let j = job(&store, JobKind::Pull).await;
        let bodies = vec![
            LogBody::RunStarted(RunStarted {
                job_kind: JobKind::Pull,
                direction: Some(Direction::Pull),
                initiator: Some(System::HubSpot),
                subject: None,
                total: Some(3),
            }),
            LogBody::Record(record(
                Object::Company,
                (System::HubSpot, "501"),
                (System::Accelo, Some("12")),
            )),
            LogBody::RunProgress(RunProgress {
                done: 1,
                total: Some(3),
            }),
            LogBody::Notice(Notice {
                level: NoticeLevel::Info,
                message: "no email sent: email is not configured".into(),
            }),
            LogBody::RunFinished(RunFinished {
                job_kind: JobKind::Pull,
                direction: Some(Direction::Pull),
                initiator: Some(System::HubSpot),
                subject: None,
                state: JobState::Succeeded,
                counts: Counts {
                    updated: 1,
                    skipped: 2,
                    ..Counts::default()
                },
                duration_ms: 1234,
                error: None,
                failure: None,
                problems: 0,
                interrupted: 0,
                guardrail: None,
            }),
        ];
        let before = chrono::Utc::now() - chrono::Duration::seconds(1);
        let mut ids = Vec::new();
        for body in &bodies {
            ids.push(
                store
                    .append_log(&NewLogEntry {
                        job: Some(j),
                        body: body.clone(),
                    })
                    .await
                    .unwrap(),
            );
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let log = store.log(&LogQuery::default()).await.unwrap();
        assert_eq!(log.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
        assert_eq!(
            log.iter().map(|e| e.body.clone()).collect::<Vec<_>>(),
            bodies
        );
        for e in &log {
            assert_eq!(e.job, Some(j));
            assert!(e.at >= before && e.at <= chrono::Utc::now());
        }
        // The JSON line shape of `tandem log --json`.
        let line = serde_json::to_value(&log[1]).unwrap();
        assert_eq!(line["kind"], "record");
        assert_eq!(line["job"], json!(j.0));
        assert_eq!(line["source"], json!({"system": "hubspot", "id": "501"}));
        assert_eq!(line["target"], json!({"system": "accelo", "id": "12"}));
        assert_eq!(line["outcome"], "updated");
        assert_eq!(
            line["changes"][1],
            json!({"field": "postal_address.city", "from": null, "to": "Hobart"})
        );
        let finished = serde_json::to_value(&log[4]).unwrap();
        assert_eq!(finished["kind"], "run_finished");
        assert_eq!(finished["counts"]["skipped"], 2);
        assert_eq!(finished["duration_ms"], 1234);
    })
    .await;
}

#[tokio::test]
async fn queries_filter_by_job_record_time_and_id() {
    for_each_store(|store| async move {
        let pull = job(&store, JobKind::Pull).await;
        let push = job(&store, JobKind::Push).await;
        let write = |job: JobId, entry: RecordEntry| RecordOutcome {
            job: Some(job),
            entry,
            link: LinkChange::Keep,
            resolve_intent: None,
        };
        let a = store
            .record_outcome(&write(
                pull,
                record(
                    Object::Company,
                    (System::HubSpot, "1"),
                    (System::Accelo, Some("10")),
                ),
            ))
            .await
            .unwrap();
        let b = store
            .record_outcome(&write(
                pull,
                record(
                    Object::Contact,
                    (System::HubSpot, "1"),
                    (System::Accelo, Some("70")),
                ),
            ))
            .await
            .unwrap();
        let c = store
            .record_outcome(&write(
                push,
                record(
                    Object::Company,
                    (System::Accelo, "10"),
                    (System::HubSpot, Some("1")),
                ),
            ))
            .await
            .unwrap();
        let d = store
            .record_outcome(&write(
                push,
                record(
                    Object::Company,
                    (System::Accelo, "11"),
                    (System::HubSpot, None),
                ),
            ))
            .await
            .unwrap();
        let ids = |q: LogQuery| {
            let store = store.clone();
            async move {
                store
                    .log(&q)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.id)
                    .collect::<Vec<LogId>>()
            }
        };
        assert_eq!(
            ids(LogQuery {
                job: Some(pull),
                ..LogQuery::default()
            })
            .await,
            [a, b]
        );
        // A record is found as source and as target, and only for its object.
        assert_eq!(
            ids(LogQuery {
                record: Some("hubspot:company:1".parse().unwrap()),
                ..LogQuery::default()
            })
            .await,
            [a, c]
        );
        assert_eq!(
            ids(LogQuery {
                record: Some("accelo:company:10".parse().unwrap()),
                job: Some(push),
                ..LogQuery::default()
            })
            .await,
            [c]
        );
        assert_eq!(
            ids(LogQuery {
                record: Some("accelo:company:11".parse().unwrap()),
                ..LogQuery::default()
            })
            .await,
            [d]
        );
        assert!(
            ids(LogQuery {
                record: Some("hubspot:contact:10".parse().unwrap()),
                ..LogQuery::default()
            })
            .await
            .is_empty()
        );
        assert_eq!(
            ids(LogQuery {
                after: Some(b),
                ..LogQuery::default()
            })
            .await,
            [c, d]
        );
        assert_eq!(
            ids(LogQuery {
                after: Some(a),
                limit: Some(2),
                ..LogQuery::default()
            })
            .await,
            [b, c]
        );
        assert_eq!(
            ids(LogQuery {
                last: Some(3),
                ..LogQuery::default()
            })
            .await,
            [b, c, d]
        );
        assert_eq!(
            ids(LogQuery {
                since: Some(chrono::Utc::now() - chrono::Duration::minutes(5)),
                ..LogQuery::default()
            })
            .await,
            [a, b, c, d]
        );
        assert!(
            ids(LogQuery {
                since: Some(chrono::Utc::now() + chrono::Duration::minutes(5)),
                ..LogQuery::default()
            })
            .await
            .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    const TOKEN: &str = "pat-na1-3b1e7c0a-store-log-test";
    redact::register_secret(TOKEN);
    for_each_store(|store| async move {
        let mut entry = record(
            Object::Company,
            (System::Accelo, "5"),
            (System::HubSpot, None),
        );
        entry.outcome = Outcome::Failed;
        entry.error = Some(format!(
            "POST https://api.hubapi.com/crm/v3/objects/companies failed: 401 with \
             Authorization: Bearer {TOKEN}; retry with client_secret=abcdef123456 refused"
        ));
        entry.reason = format!("token {TOKEN} was refused");
        entry.changes[0].to = Some(format!("Acme {TOKEN}"));
        store
            .record_outcome(&RecordOutcome {
                job: None,
                entry,
                link: LinkChange::Keep,
                resolve_intent: None,
            })
            .await
            .unwrap();
        store
            .append_log(&NewLogEntry {
                job: None,
                body: LogBody::Notice(Notice {
                    level: NoticeLevel::Error,
                    message: format!("access_token={TOKEN}&x=1"),
                }),
            })
            .await
            .unwrap();
        let log = store.log(&LogQuery::default()).await.unwrap();
        let text = serde_json::to_string(&log).unwrap();
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains("abcdef123456"), "{text}");
        assert!(text.contains("[redacted]"));
        let LogBody::Record(r) = &log[0].body else {
            panic!("expected a record entry")
        };
        assert_eq!(
            r.error.as_deref(),
            Some(
                "POST https://api.hubapi.com/crm/v3/objects/companies failed: 401 with \
                 Authorization: Bearer [redacted]; retry with client_secret=[redacted] refused"
            )
        );
        assert_eq!(r.changes[0].to.as_deref(), Some("Acme [redacted]"));
    })
    .await;
}

/// Writers append concurrently (each in its own pool, like separate workers) while a follower
/// reads "entries after the last id seen" over and over: it must see every entry exactly once.
async fn a_follower_sees_every_entry_once(ts: TestStore) {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 60;
    let j = job(&ts.store, JobKind::Record).await;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = tandem_engine::store::open(&ts.url).await.unwrap();
        writers.push(tokio::spawn(async move {
            // Batches (as the executor writes HubSpot batches) interleave with single appends;
            // a batch holds its ids for the length of its transaction.
            let mut n = 0;
            while n < PER_WRITER {
                let entry = |n: usize| {
                    record(
                        Object::Contact,
                        (System::HubSpot, &format!("{w}-{n}")),
                        (System::Accelo, Some("1")),
                    )
                };
                if n % 20 == 0 {
                    let batch: Vec<RecordOutcome> = (n..n + 10)
                        .map(|n| RecordOutcome {
                            job: Some(j),
                            entry: entry(n),
                            link: LinkChange::Keep,
                            resolve_intent: None,
                        })
                        .collect();
                    store.record_outcomes(&batch).await.unwrap();
                    n += 10;
                } else {
                    store
                        .append_log(&NewLogEntry {
                            job: Some(j),
                            body: LogBody::Record(entry(n)),
                        })
                        .await
                        .unwrap();
                    n += 1;
                }
            }
            store.close().await;
        }));
    }
    let follower = tandem_engine::store::open(&ts.url).await.unwrap();
    let mut seen = BTreeSet::new();
    let mut last: Option<LogId> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < WRITERS * PER_WRITER {
        assert!(
            tokio::time::Instant::now() < deadline,
            "follower saw {} of {} entries",
            seen.len(),
            WRITERS * PER_WRITER
        );
        let batch = follower
            .log(&LogQuery {
                after: last,
                limit: Some(25),
                ..LogQuery::default()
            })
            .await
            .unwrap();
        for e in &batch {
            let LogBody::Record(r) = &e.body else {
                panic!("unexpected entry")
            };
            assert!(
                seen.insert(r.source.id.clone().unwrap()),
                "seen twice: {r:?}"
            );
            last = Some(e.id);
        }
        if batch.is_empty() {
            tokio::task::yield_now().await;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    // Nothing was skipped: everything in the log was seen by the follower.
    let all = follower.log(&LogQuery::default()).await.unwrap();
    assert_eq!(all.len(), seen.len());
    follower.close().await;
    ts.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_sees_every_entry_once_sqlite() {
    a_follower_sees_every_entry_once(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_sees_every_entry_once_postgres() {
    a_follower_sees_every_entry_once(TestStore::postgres().await).await;
}

/// The commit-order guarantee, made deterministic on PostgreSQL: writer A has logged one record
/// of a batch and is held (by another session's row lock) before committing; writer B appends
/// meanwhile. A follower that reads in between and then continues after the highest id it saw
/// must still see A's entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_misses_no_entry_committed_late_postgres() {
    use sqlx::Connection;
    let ts = TestStore::postgres().await;
    let store = ts.store.clone();
    let j = job(&store, JobKind::Pull).await;
    let held = tandem_core::model::Link {
        object: Object::Company,
        hubspot_id: "held".into(),
        accelo_id: "h1".into(),
        affiliation_id: None,
        last_synced: Default::default(),
    };
    store.upsert_link(&held).await.unwrap();

    // Another session locks the link row A will update.
    let mut blocker = sqlx::PgConnection::connect(&ts.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("SELECT 1 FROM links WHERE hubspot_id = 'held' FOR UPDATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let blocker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut blocker)
        .await
        .unwrap();
    let mut watcher = sqlx::PgConnection::connect(&ts.url).await.unwrap();
    let a_store = store.clone();
    let a = tokio::spawn(async move {
        let first = RecordOutcome {
            job: Some(j),
            entry: record(
                Object::Company,
                (System::HubSpot, "a1"),
                (System::Accelo, Some("1")),
            ),
            link: LinkChange::Keep,
            resolve_intent: None,
        };
        let mut second = first.clone();
        second.entry.source.id = Some("held".into());
        second.link = LinkChange::Upsert(tandem_core::model::Link {
            accelo_id: "h2".into(),
            ..held
        });
        a_store.record_outcomes(&[first, second]).await.unwrap()
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let a_pid = loop {
        if let Some(pid) = blocked_by(&mut watcher, blocker_pid).await.first() {
            break *pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "A never waited for the row lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    let b_store = store.clone();
    let b = tokio::spawn(async move {
        b_store
            .append_log(&NewLogEntry {
                job: Some(j),
                body: LogBody::Notice(Notice {
                    level: NoticeLevel::Info,
                    message: "b".into(),
                }),
            })
            .await
            .unwrap()
    });
    // B either finished (no commit-order guarantee) or waits behind A.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !b.is_finished() && blocked_by(&mut watcher, a_pid).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B neither finished nor waited"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let early = store.log(&LogQuery::default()).await.unwrap();
    let last = early.last().map(|e| e.id);
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    let a_ids = a.await.unwrap();
    let b_id = b.await.unwrap();
    let late = store
        .log(&LogQuery {
            after: last,
            ..LogQuery::default()
        })
        .await
        .unwrap();
    let seen: BTreeSet<LogId> = early.iter().chain(&late).map(|e| e.id).collect();
    for id in a_ids.iter().chain([&b_id]) {
        assert!(seen.contains(id), "the follower never saw entry {id}");
    }
    ts.cleanup().await;
}

/// The sessions waiting for a lock held by session `pid`.
async fn blocked_by(watcher: &mut sqlx::PgConnection, pid: i32) -> Vec<i32> {
    sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))")
        .bind(pid)
        .fetch_all(watcher)
        .await
        .unwrap()
}

/// Appends a record entry of `job` with `outcome` and `reason` about HubSpot `object` `id`.
async fn attempt(
    store: &Arc<dyn Store>,
    job: JobId,
    object: Object,
    id: &str,
    outcome: Outcome,
    reason: &str,
) {
    let mut r = record(object, (System::HubSpot, id), (System::Accelo, None));
    r.outcome = outcome;
    r.reason = reason.into();
    if outcome == Outcome::Failed {
        r.error = Some("Accelo answered 400".into());
    }
    store
        .append_log(&NewLogEntry {
            job: Some(job),
            body: LogBody::Record(r),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn health_counts_the_records_whose_last_attempt_failed() {
    for_each_store(|store| async move {
        let j = job(&store, JobKind::Pull).await;
        // 1: failed, then failed again (one record); 2: failed, then succeeded; 3: succeeded,
        // then failed; a contact failed; a company of the same id on Accelo's side succeeded.
        attempt(&store, j, Object::Company, "1", Outcome::Failed, "").await;
        attempt(&store, j, Object::Company, "1", Outcome::Failed, "").await;
        attempt(&store, j, Object::Company, "2", Outcome::Failed, "").await;
        attempt(&store, j, Object::Company, "2", Outcome::Updated, "").await;
        attempt(&store, j, Object::Company, "3", Outcome::Created, "").await;
        attempt(&store, j, Object::Company, "3", Outcome::Failed, "").await;
        attempt(&store, j, Object::Contact, "3", Outcome::Failed, "").await;
        let mut other_side = record(
            Object::Company,
            (System::Accelo, "1"),
            (System::HubSpot, None),
        );
        other_side.outcome = Outcome::Updated;
        store
            .append_log(&NewLogEntry {
                job: Some(j),
                body: LogBody::Record(other_side),
            })
            .await
            .unwrap();
        store
            .append_log(&NewLogEntry {
                job: Some(j),
                body: LogBody::Notice(Notice {
                    level: NoticeLevel::Info,
                    message: "a notice has no record".into(),
                }),
            })
            .await
            .unwrap();
        let health = store.health().await.unwrap();
        let failing = |o: Object| health.iter().find(|h| h.object == o).unwrap().failing;
        assert_eq!(failing(Object::Company), 2, "{health:?}");
        assert_eq!(failing(Object::Contact), 1, "{health:?}");
    })
    .await;
}

#[tokio::test]
async fn skipped_records_are_counted_by_reason() {
    for_each_store(|store| async move {
        let j = job(&store, JobKind::Pull).await;
        let other = job(&store, JobKind::Pull).await;
        let criteria = "criteria not met (pull: present(record.name))";
        attempt(&store, j, Object::Company, "1", Outcome::Skipped, criteria).await;
        attempt(&store, j, Object::Company, "2", Outcome::Skipped, criteria).await;
        attempt(&store, j, Object::Contact, "3", Outcome::Skipped, criteria).await;
        attempt(
            &store,
            j,
            Object::Contact,
            "4",
            Outcome::Skipped,
            "its company is not linked",
        )
        .await;
        attempt(&store, j, Object::Contact, "5", Outcome::Updated, criteria).await;
        attempt(
            &store,
            j,
            Object::Contact,
            "6",
            Outcome::Skipped,
            "Criteria in capitals",
        )
        .await;
        attempt(
            &store,
            other,
            Object::Company,
            "7",
            Outcome::Skipped,
            criteria,
        )
        .await;
        let mut counts = store.count_skipped(j, "criteria").await.unwrap();
        counts.sort();
        assert_eq!(counts, vec![(Object::Company, 2), (Object::Contact, 1)]);
        assert_eq!(
            store.count_skipped(other, "criteria").await.unwrap(),
            vec![(Object::Company, 1)]
        );
        assert!(
            store
                .count_skipped(JobId(987_654), "criteria")
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}
