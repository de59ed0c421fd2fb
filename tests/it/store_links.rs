//! Links and record outcomes, on SQLite and PostgreSQL: look-ups from either side, bulk load,
//! upsert, delete (by either side, or one exact pair), conflicts, and the one-transaction write of link + intent + log entry.

use std::collections::BTreeMap;

use serde_json::json;
use tandem_core::model::{Link, Object, RecordKey, System};
use tandem_core::plan::{Change, RecordRef};
use tandem_engine::store::testing::for_each_store;
use tandem_engine::store::{
    IntentOpened, JobKind, LinkChange, LogQuery, NewIntent, NewJob, Outcome, RecordEntry,
    RecordOutcome, StoreError,
};

fn link(object: Object, hubspot: &str, accelo: &str) -> Link {
    Link {
        object,
        hubspot_id: hubspot.into(),
        accelo_id: accelo.into(),
        affiliation_id: None,
        last_synced: BTreeMap::new(),
    }
}

#[tokio::test]
async fn links_are_found_from_either_side() {
    for_each_store(|store| async move {
        let mut contact = link(Object::Contact, "5101", "77");
        contact.affiliation_id = Some("31".into());
        contact.last_synced = BTreeMap::from([
            ("email".to_string(), "ada@acme.com".to_string()),
            ("firstname".to_string(), "Ada".to_string()),
        ]);
        store.upsert_link(&contact).await.unwrap();
        store
            .upsert_link(&link(Object::Company, "5101", "12"))
            .await
            .unwrap();

        let by_h = store
            .link(Object::Contact, System::HubSpot, "5101")
            .await
            .unwrap();
        let by_a = store
            .link(Object::Contact, System::Accelo, "77")
            .await
            .unwrap();
        assert_eq!(by_h.as_ref(), Some(&contact));
        assert_eq!(by_a.as_ref(), Some(&contact));
        // The same HubSpot id under another object is another link.
        let company = store
            .link(Object::Company, System::HubSpot, "5101")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(company.accelo_id, "12");
        assert!(
            store
                .link(Object::Company, System::Accelo, "77")
                .await
                .unwrap()
                .is_none()
        );
    })
    .await;
}

#[tokio::test]
async fn upsert_replaces_and_bulk_load_returns_all_of_an_object() {
    for_each_store(|store| async move {
        for (h, a) in [("3", "30"), ("1", "10"), ("2", "20")] {
            store
                .upsert_link(&link(Object::Company, h, a))
                .await
                .unwrap();
        }
        store
            .upsert_link(&link(Object::Contact, "9", "90"))
            .await
            .unwrap();
        let mut updated = link(Object::Company, "2", "21");
        updated.last_synced.insert("name".into(), "Acme".into());
        store.upsert_link(&updated).await.unwrap();

        let all = store.links(Object::Company).await.unwrap();
        assert_eq!(
            all.iter()
                .map(|l| (l.hubspot_id.as_str(), l.accelo_id.as_str()))
                .collect::<Vec<_>>(),
            [("1", "10"), ("2", "21"), ("3", "30")]
        );
        assert_eq!(
            all[1].last_synced.get("name").map(String::as_str),
            Some("Acme")
        );
        assert!(
            store
                .link(Object::Company, System::Accelo, "20")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.links(Object::Contact).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn one_record_cannot_be_linked_twice() {
    for_each_store(|store| async move {
        store
            .upsert_link(&link(Object::Company, "1", "10"))
            .await
            .unwrap();
        let err = store
            .upsert_link(&link(Object::Company, "2", "10"))
            .await
            .unwrap_err();
        match &err {
            StoreError::LinkConflict { existing, .. } => {
                assert_eq!(existing, "accelo `10` is already linked to hubspot `1`")
            }
            other => panic!("expected a conflict, got {other}"),
        }
        assert_eq!(
            err.to_string(),
            "cannot link company hubspot `2` ↔ accelo `10`: accelo `10` is already linked to \
             hubspot `1`"
        );
        assert_eq!(store.links(Object::Company).await.unwrap().len(), 1);
        // The store still works after the failed statement.
        store
            .upsert_link(&link(Object::Company, "2", "20"))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn delete_removes_by_either_side() {
    for_each_store(|store| async move {
        store
            .upsert_link(&link(Object::Contact, "1", "10"))
            .await
            .unwrap();
        store
            .upsert_link(&link(Object::Contact, "2", "20"))
            .await
            .unwrap();
        assert!(
            store
                .delete_link(Object::Contact, System::Accelo, "10")
                .await
                .unwrap()
        );
        assert!(
            store
                .delete_link(Object::Contact, System::HubSpot, "2")
                .await
                .unwrap()
        );
        assert!(
            !store
                .delete_link(Object::Contact, System::HubSpot, "2")
                .await
                .unwrap()
        );
        assert!(store.links(Object::Contact).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn delete_pair_removes_only_that_exact_pair() {
    for_each_store(|store| async move {
        store
            .upsert_link(&link(Object::Company, "1", "10"))
            .await
            .unwrap();
        store
            .upsert_link(&link(Object::Contact, "1", "10"))
            .await
            .unwrap();
        // Another pair of the same HubSpot record (a link replaced meanwhile) is left alone.
        assert!(
            !store
                .delete_link_pair(Object::Company, "1", "11")
                .await
                .unwrap()
        );
        assert!(
            !store
                .delete_link_pair(Object::Company, "2", "10")
                .await
                .unwrap()
        );
        assert!(
            store
                .delete_link_pair(Object::Company, "1", "10")
                .await
                .unwrap()
        );
        assert!(
            !store
                .delete_link_pair(Object::Company, "1", "10")
                .await
                .unwrap()
        );
        assert!(store.links(Object::Company).await.unwrap().is_empty());
        // The contact with the same ids is another link.
        assert_eq!(store.links(Object::Contact).await.unwrap().len(), 1);
    })
    .await;
}

fn created(job: tandem_engine::store::JobId, hubspot: &str, accelo: Option<&str>) -> RecordEntry {
    RecordEntry {
        object: Object::Company,
        source: RecordRef {
            system: System::HubSpot,
            id: Some(hubspot.into()),
        },
        target: RecordRef {
            system: System::Accelo,
            id: accelo.map(String::from),
        },
        outcome: if accelo.is_some() {
            Outcome::Created
        } else {
            Outcome::Failed
        },
        reason: format!("new qualifying company (job {job})"),
        changes: vec![Change {
            field: "name".into(),
            from: None,
            to: Some("Acme".into()),
        }],
        error: None,
    }
}

#[tokio::test]
async fn a_create_settles_its_intent_links_and_logs_in_one_go() {
    for_each_store(|store| async move {
        let job = store
            .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
            .await
            .unwrap()
            .id;
        let intent = store
            .open_intent(&NewIntent {
                job: Some(job),
                source: RecordKey {
                    system: System::HubSpot,
                    object: Object::Company,
                    id: "501".into(),
                },
                target: System::Accelo,
                dedup: json!({"domain": "acme.com"}),
            })
            .await
            .unwrap()
            .opened()
            .unwrap();
        let open = store.open_intents().await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].dedup, json!({"domain": "acme.com"}));
        assert_eq!(open[0].source.to_string(), "hubspot:company:501");

        let mut l = link(Object::Company, "501", "12");
        l.last_synced.insert("name".into(), "Acme".into());
        let log_id = store
            .record_outcome(&RecordOutcome {
                job: Some(job),
                entry: created(job, "501", Some("12")),
                link: LinkChange::Upsert(l.clone()),
                resolve_intent: Some(intent),
            })
            .await
            .unwrap();

        assert!(store.open_intents().await.unwrap().is_empty());
        assert_eq!(
            store
                .link(Object::Company, System::Accelo, "12")
                .await
                .unwrap(),
            Some(l)
        );
        let log = store
            .log(&LogQuery {
                job: Some(job),
                ..LogQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].id, log_id);
        // Resolving again is a no-op.
        assert!(!store.resolve_intent(intent, Some("12")).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn a_failed_create_abandons_its_intent() {
    for_each_store(|store| async move {
        let key = RecordKey {
            system: System::HubSpot,
            object: Object::Company,
            id: "7".into(),
        };
        let intent = store
            .open_intent(&NewIntent {
                job: None,
                source: key,
                target: System::Accelo,
                dedup: json!({}),
            })
            .await
            .unwrap()
            .opened()
            .unwrap();
        let mut entry = created(tandem_engine::store::JobId(1), "7", None);
        entry.error = Some("accelo answered 400: name is required".into());
        store
            .record_outcome(&RecordOutcome {
                job: None,
                entry,
                link: LinkChange::Keep,
                resolve_intent: Some(intent),
            })
            .await
            .unwrap();
        assert!(store.open_intents().await.unwrap().is_empty());
        assert!(store.links(Object::Company).await.unwrap().is_empty());
        // An intent settled by hand after a crash, with the id found by its dedup key.
        let second = store
            .open_intent(&NewIntent {
                job: None,
                source: RecordKey {
                    system: System::Accelo,
                    object: Object::Contact,
                    id: "8".into(),
                },
                target: System::HubSpot,
                dedup: json!({"email": "x@y.z"}),
            })
            .await
            .unwrap()
            .opened()
            .unwrap();
        assert!(store.resolve_intent(second, Some("9001")).await.unwrap());
        assert!(store.open_intents().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_batch_of_outcomes_is_written_whole_or_not_at_all() {
    for_each_store(|store| async move {
        let job = store
            .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
            .await
            .unwrap()
            .id;
        store
            .upsert_link(&link(Object::Company, "900", "99"))
            .await
            .unwrap();
        let intent = store
            .open_intent(&NewIntent {
                job: Some(job),
                source: RecordKey {
                    system: System::HubSpot,
                    object: Object::Company,
                    id: "1".into(),
                },
                target: System::Accelo,
                dedup: json!({}),
            })
            .await
            .unwrap()
            .opened()
            .unwrap();
        let ok = |h: &str, a: &str| RecordOutcome {
            job: Some(job),
            entry: created(job, h, Some(a)),
            link: LinkChange::Upsert(link(Object::Company, h, a)),
            resolve_intent: None,
        };
        let mut first = ok("1", "11");
        first.resolve_intent = Some(intent);
        // The third links Accelo 99, which HubSpot 900 already has.
        let batch = [first, ok("2", "22"), ok("3", "99")];
        let err = store.record_outcomes(&batch).await.unwrap_err();
        assert!(matches!(err, StoreError::LinkConflict { .. }), "{err}");

        assert_eq!(store.links(Object::Company).await.unwrap().len(), 1);
        assert!(store.log(&LogQuery::default()).await.unwrap().is_empty());
        assert_eq!(
            store.open_intents().await.unwrap().len(),
            1,
            "intent still open"
        );

        // Without the conflict the whole batch goes in, in order.
        let ids = store
            .record_outcomes(&[ok("1", "11"), ok("2", "22")])
            .await
            .unwrap();
        assert_eq!(ids.len(), 2);
        assert!(ids[0] < ids[1]);
        assert_eq!(store.links(Object::Company).await.unwrap().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn an_outcome_can_remove_a_link() {
    for_each_store(|store| async move {
        store
            .upsert_link(&link(Object::Contact, "1", "10"))
            .await
            .unwrap();
        let entry = RecordEntry {
            object: Object::Contact,
            source: RecordRef {
                system: System::HubSpot,
                id: Some("1".into()),
            },
            target: RecordRef {
                system: System::Accelo,
                id: Some("10".into()),
            },
            outcome: Outcome::Skipped,
            reason: "the accelo contact was deleted; unlinked".into(),
            changes: vec![],
            error: None,
        };
        store
            .record_outcome(&RecordOutcome {
                job: None,
                entry: entry.clone(),
                link: LinkChange::Remove(System::Accelo, "10".into()),
                resolve_intent: None,
            })
            .await
            .unwrap();
        assert!(store.links(Object::Contact).await.unwrap().is_empty());
        // A link of the wrong object is refused before anything is written.
        let err = store
            .record_outcome(&RecordOutcome {
                job: None,
                entry,
                link: LinkChange::Upsert(link(Object::Company, "1", "10")),
                resolve_intent: None,
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid store request: a contact outcome cannot change a company link"
        );
        assert_eq!(store.log(&LogQuery::default()).await.unwrap().len(), 1);
    })
    .await;
}

fn intent(
    job: Option<tandem_engine::store::JobId>,
    system: System,
    id: &str,
    target: System,
) -> NewIntent {
    NewIntent {
        job,
        source: RecordKey {
            system,
            object: Object::Company,
            id: id.into(),
        },
        target,
        dedup: json!({}),
    }
}

#[tokio::test]
async fn one_open_intent_per_record_and_none_for_a_linked_record() {
    for_each_store(|store| async move {
        let a = store
            .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
            .await
            .unwrap()
            .id;
        let b = store
            .enqueue(&NewJob::new(JobKind::Record, json!(null)))
            .await
            .unwrap()
            .id;
        let first = store
            .open_intent(&intent(Some(a), System::HubSpot, "1", System::Accelo))
            .await
            .unwrap()
            .opened()
            .unwrap();
        // A second run creating the same record is told who holds it.
        match store
            .open_intent(&intent(Some(b), System::HubSpot, "1", System::Accelo))
            .await
            .unwrap()
        {
            IntentOpened::Held(held) => {
                assert_eq!((held.id, held.job), (first, Some(a)));
            }
            other => panic!("expected Held, got {other:?}"),
        }
        assert_eq!(store.open_intents().await.unwrap().len(), 1);
        // Another record, or the same record's copy in the other system direction, is free.
        assert!(
            store
                .open_intent(&intent(Some(b), System::HubSpot, "2", System::Accelo))
                .await
                .unwrap()
                .opened()
                .is_some()
        );
        // Once the first create is settled, the record is linked: no intent for it any more.
        store
            .record_outcome(&RecordOutcome {
                job: Some(a),
                entry: created(a, "1", Some("11")),
                link: LinkChange::Insert(link(Object::Company, "1", "11")),
                resolve_intent: Some(first),
            })
            .await
            .unwrap();
        match store
            .open_intent(&intent(Some(b), System::HubSpot, "1", System::Accelo))
            .await
            .unwrap()
        {
            IntentOpened::Linked(l) => assert_eq!(l.accelo_id, "11"),
            other => panic!("expected Linked, got {other:?}"),
        }
        // An abandoned intent frees the record again.
        let free = store
            .open_intent(&intent(None, System::Accelo, "50", System::HubSpot))
            .await
            .unwrap()
            .opened()
            .unwrap();
        assert!(store.resolve_intent(free, None).await.unwrap());
        assert!(
            store
                .open_intent(&intent(None, System::Accelo, "50", System::HubSpot))
                .await
                .unwrap()
                .opened()
                .is_some()
        );
    })
    .await;
}

#[tokio::test]
async fn a_new_pair_is_refused_when_either_record_got_another_partner() {
    for_each_store(|store| async move {
        let job = store
            .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
            .await
            .unwrap()
            .id;
        store
            .upsert_link(&link(Object::Company, "1", "11"))
            .await
            .unwrap();
        let insert = |h: &str, a: &str| RecordOutcome {
            job: Some(job),
            entry: created(job, h, Some(a)),
            link: LinkChange::Insert(link(Object::Company, h, a)),
            resolve_intent: None,
        };
        // HubSpot 1 was linked meanwhile: a second twin is refused (an upsert would replace).
        let err = store.record_outcome(&insert("1", "12")).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::LinkConflict { existing, .. } if existing.contains("`11`")),
            "{err}"
        );
        // Accelo 11 has its partner too.
        let err = store.record_outcome(&insert("2", "11")).await.unwrap_err();
        assert!(matches!(err, StoreError::LinkConflict { .. }), "{err}");
        // The same pair again only refreshes it.
        store.record_outcome(&insert("1", "11")).await.unwrap();
        // A record another run is creating a copy of cannot be linked by this one…
        let other = store
            .open_intent(&intent(None, System::Accelo, "30", System::HubSpot))
            .await
            .unwrap()
            .opened()
            .unwrap();
        let err = store.record_outcome(&insert("3", "30")).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::LinkConflict { existing, .. } if existing.contains("creating")),
            "{err}"
        );
        // …but the run holding the intent settles it with that very pair.
        let mut own = insert("3", "30");
        own.resolve_intent = Some(other);
        store.record_outcome(&own).await.unwrap();
        assert!(store.open_intents().await.unwrap().is_empty());
        assert_eq!(store.links(Object::Company).await.unwrap().len(), 2);
        // Nothing of the refused outcomes reached the log.
        assert_eq!(store.log(&LogQuery::default()).await.unwrap().len(), 2);
    })
    .await;
}
