//! Echoes, cursors and webhook events, on SQLite and PostgreSQL.

use std::time::Duration;

use serde_json::json;
use tandem_core::model::{Object, System};
use tandem_engine::store::testing::for_each_store;
use tandem_engine::store::{Echo, JobEnd, JobKind, NewEvent, NewJob};

fn echo(field: &str, value: Option<&str>) -> Echo {
    Echo {
        system: System::Accelo,
        object: Object::Company,
        id: "12".into(),
        field: field.into(),
        value: value.map(String::from),
    }
}

#[tokio::test]
async fn an_echo_is_recognised_once_and_only_for_the_value_written() {
    for_each_store(|store| async move {
        let hour = Duration::from_secs(3600);
        store
            .remember_echoes(
                &[echo("name", Some("Acme Pty Ltd")), echo("website", None)],
                hour,
            )
            .await
            .unwrap();
        // Someone else's value for the same field is not ours.
        assert!(
            !store
                .consume_echo(&echo("name", Some("Acme Ltd")))
                .await
                .unwrap()
        );
        // An empty string is not a cleared field.
        assert!(
            !store
                .consume_echo(&echo("website", Some("")))
                .await
                .unwrap()
        );
        // Another record or system is not ours.
        let mut other = echo("name", Some("Acme Pty Ltd"));
        other.id = "13".into();
        assert!(!store.consume_echo(&other).await.unwrap());
        other.id = "12".into();
        other.system = System::HubSpot;
        assert!(!store.consume_echo(&other).await.unwrap());

        assert!(
            store
                .consume_echo(&echo("name", Some("Acme Pty Ltd")))
                .await
                .unwrap()
        );
        assert!(store.consume_echo(&echo("website", None)).await.unwrap());
        // Consumed: the same change seen again is a person's edit.
        assert!(
            !store
                .consume_echo(&echo("name", Some("Acme Pty Ltd")))
                .await
                .unwrap()
        );

        // Two writes of the same value excuse two observed changes.
        let twice = [echo("phone", Some("555")), echo("phone", Some("555"))];
        store.remember_echoes(&twice, hour).await.unwrap();
        assert!(store.consume_echo(&twice[0]).await.unwrap());
        assert!(store.consume_echo(&twice[0]).await.unwrap());
        assert!(!store.consume_echo(&twice[0]).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn expired_echoes_are_not_recognised_and_are_purged() {
    for_each_store(|store| async move {
        store
            .remember_echoes(&[echo("name", Some("Old"))], Duration::ZERO)
            .await
            .unwrap();
        store
            .remember_echoes(&[echo("name", Some("New"))], Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(
            !store
                .consume_echo(&echo("name", Some("Old")))
                .await
                .unwrap()
        );
        assert_eq!(store.purge_expired_echoes().await.unwrap(), 1);
        // `tandem serve`'s hourly housekeeping does the same (and keeps recent events).
        store
            .remember_echoes(&[echo("name", Some("Older"))], Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            tandem_engine::server::serve::housekeep(
                store.as_ref(),
                tandem_engine::server::serve::KEEP_EVENTS
            )
            .await
            .unwrap(),
            (1, 0)
        );
        assert!(
            store
                .consume_echo(&echo("name", Some("New")))
                .await
                .unwrap()
        );
    })
    .await;
}

#[tokio::test]
async fn cursors_are_named_watermarks() {
    for_each_store(|store| async move {
        assert_eq!(store.cursor("hubspot:company").await.unwrap(), None);
        store
            .set_cursor("hubspot:company", "1700000000000")
            .await
            .unwrap();
        store
            .set_cursor("accelo:contact", "1700000000")
            .await
            .unwrap();
        store
            .set_cursor("hubspot:company", "1700000060000")
            .await
            .unwrap();
        assert_eq!(
            store.cursor("hubspot:company").await.unwrap().as_deref(),
            Some("1700000060000")
        );
        assert_eq!(
            store.cursor("accelo:contact").await.unwrap().as_deref(),
            Some("1700000000")
        );
    })
    .await;
}

fn event(id: u64, record: &str) -> NewEvent {
    NewEvent {
        source: System::HubSpot,
        dedup_key: id.to_string(),
        object: Some(Object::Company),
        record_id: Some(record.into()),
        payload: json!({"eventId": id, "objectId": record, "propertyName": "name"}),
    }
}

fn job_for(record: &str) -> NewJob {
    NewJob::new(
        JobKind::Record,
        json!({"record": format!("hubspot:company:{record}")}),
    )
    .coalesce(format!("hubspot:company:{record}"))
}

#[tokio::test]
async fn events_are_deduplicated_and_coalesced_into_one_job_per_record() {
    for_each_store(|store| async move {
        let first = store
            .accept_event(&event(1, "5"), Some(&job_for("5")))
            .await
            .unwrap();
        assert!(first.new);
        let job = first.job.unwrap();
        assert!(job.created);

        // A redelivery: nothing stored, nothing queued.
        let again = store
            .accept_event(&event(1, "5"), Some(&job_for("5")))
            .await
            .unwrap();
        assert!(!again.new);
        assert_eq!(again.id, first.id);
        assert_eq!(again.job, None);

        // Another change to the same record joins the queued job.
        let second = store
            .accept_event(&event(2, "5"), Some(&job_for("5")))
            .await
            .unwrap();
        assert!(second.new);
        assert_eq!(second.job.unwrap().id, job.id);
        assert!(!second.job.unwrap().created);

        // Another record gets its own job; an event not worth a job is stored all the same.
        let other = store
            .accept_event(&event(3, "6"), Some(&job_for("6")))
            .await
            .unwrap();
        assert_ne!(other.job.unwrap().id, job.id);
        let ignored = store.accept_event(&event(4, "7"), None).await.unwrap();
        assert!(ignored.new && ignored.job.is_none());

        let of_job = store.events_for_job(job.id).await.unwrap();
        assert_eq!(
            of_job
                .iter()
                .map(|e| e.dedup_key.as_str())
                .collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(of_job[0].payload["propertyName"], "name");
        assert_eq!(of_job[0].object, Some(Object::Company));
        assert_eq!(store.unprocessed_events(10).await.unwrap().len(), 4);
        assert_eq!(store.unprocessed_events(1).await.unwrap()[0].dedup_key, "1");

        // Finishing the job marks its events processed; pruning removes processed ones only.
        let claimed = store
            .claim(job.id, "w", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, job.id);
        store.finish(job.id, "w", &JobEnd::Succeeded).await.unwrap();
        let left: Vec<String> = store
            .unprocessed_events(10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.dedup_key)
            .collect();
        assert_eq!(left, ["3", "4"]);
        assert!(
            store.events_for_job(job.id).await.unwrap()[0]
                .processed_at
                .is_some()
        );
        let pruned = store
            .prune_events(chrono::Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(pruned, 2);
        assert!(store.events_for_job(job.id).await.unwrap().is_empty());
        assert_eq!(store.unprocessed_events(10).await.unwrap().len(), 2);

        // The same dedup key from the other system is a different event.
        let mut from_accelo = event(1, "5");
        from_accelo.source = System::Accelo;
        assert!(store.accept_event(&from_accelo, None).await.unwrap().new);
    })
    .await;
}

#[tokio::test]
async fn a_batch_of_events_is_stored_and_coalesced_in_one_go() {
    for_each_store(|store| async move {
        // 30 events over 3 records, with one redelivery inside the batch.
        let mut batch: Vec<(NewEvent, Option<NewJob>)> = (0..30)
            .map(|i| {
                let record = format!("{}", i % 3);
                (event(100 + i, &record), Some(job_for(&record)))
            })
            .collect();
        batch.push((event(105, "2"), Some(job_for("2"))));
        let accepted = store.accept_events(&batch).await.unwrap();
        assert_eq!(accepted.len(), 31);
        assert_eq!(accepted.iter().filter(|a| a.new).count(), 30);
        let redelivered = accepted[30];
        assert!(!redelivered.new && redelivered.job.is_none());
        assert_eq!(redelivered.id, accepted[5].id);
        let jobs: std::collections::BTreeSet<_> = accepted
            .iter()
            .filter_map(|a| a.job.map(|j| j.id))
            .collect();
        assert_eq!(jobs.len(), 3, "one job per record");
        for j in jobs {
            assert_eq!(store.events_for_job(j).await.unwrap().len(), 10);
        }
        assert!(store.accept_events(&[]).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn events_without_a_job_can_be_settled_and_redeliveries_stay_recognised() {
    for_each_store(|store| async move {
        let ignored = store.accept_event(&event(40, "9"), None).await.unwrap();
        let queued = store
            .accept_event(&event(41, "9"), Some(&job_for("9")))
            .await
            .unwrap();
        // Only the job-less event is settled; the queued one waits for its job.
        assert_eq!(
            store.settle_events(&[ignored.id, queued.id]).await.unwrap(),
            1
        );
        let left: Vec<String> = store
            .unprocessed_events(10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.dedup_key)
            .collect();
        assert_eq!(left, ["41"]);
        // Settling twice changes nothing; a redelivery of the settled event is still known.
        assert_eq!(store.settle_events(&[ignored.id]).await.unwrap(), 0);
        assert!(!store.accept_event(&event(40, "9"), None).await.unwrap().new);
        assert_eq!(store.settle_events(&[]).await.unwrap(), 0);
    })
    .await;
}
