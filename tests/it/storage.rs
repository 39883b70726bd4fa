//! The storage conformance suite: every `Store` method, each story written once and run on a
//! fresh SQLite file and, when `SSFD_TEST_DATABASE_URL` names a server, on a fresh PostgreSQL
//! database. Assertion messages start with the backend.

use std::collections::HashSet;
use std::sync::Arc;

use ssfd::storage::{
    self, ClientRow, CredentialRow, DbError, DeliveryStats, Lease, LeasedSet, NewOutboxRow,
    OutboxEntry, ReceivedEventRow, SharedStore, SigningKeyRow, StreamRow, SubjectRow,
};
use tokio::task::JoinSet;

use crate::common::TestDb;

const PUSH: &str = "urn:ietf:rfc:8935";
const POLL: &str = "urn:ietf:rfc:8936";

/// Every available backend, each a fresh database with the migrations applied.
async fn backends() -> Vec<(TestDb, SharedStore)> {
    let mut dbs = vec![TestDb::sqlite()];
    if let Ok(url) = std::env::var("SSFD_TEST_DATABASE_URL") {
        if !url.is_empty() {
            dbs.push(TestDb::postgres(&url).await);
        }
    }
    let mut stores = Vec::new();
    for db in dbs {
        let store = storage::connect(&db.url, 8)
            .await
            .unwrap_or_else(|error| panic!("{}: connect: {error}", db.backend()));
        stores.push((db, store));
    }
    stores
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, DbError>, what: &str) {
    assert!(
        matches!(result, Err(DbError::Conflict(_))),
        "{what}: expected Conflict, got {result:?}"
    );
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, DbError>, what: &str) {
    assert!(
        matches!(result, Err(DbError::NotFound)),
        "{what}: expected NotFound, got {result:?}"
    );
}

fn key(kid: &str, created_at: i64, retires_at: Option<i64>) -> SigningKeyRow {
    SigningKeyRow {
        kid: kid.to_owned(),
        alg: "ES256".to_owned(),
        private_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        created_at,
        retires_at,
    }
}

fn client(client_id: &str, created_at: i64) -> ClientRow {
    ClientRow {
        client_id: client_id.to_owned(),
        name: format!("receiver {client_id}"),
        secret_hash: format!("secret-hash-{client_id}"),
        scopes: "ssf.read ssf.manage".to_owned(),
        created_at,
        revoked_at: None,
    }
}

fn credential(id: &str, kind: &str, client_id: Option<&str>, created_at: i64) -> CredentialRow {
    CredentialRow {
        id: id.to_owned(),
        kind: kind.to_owned(),
        name: format!("credential {id}"),
        token_hash: format!("token-hash-{id}"),
        scopes: "ssf.read".to_owned(),
        client_id: client_id.map(str::to_owned),
        created_at,
        revoked_at: None,
    }
}

fn stream(stream_id: &str, client_id: &str, method: &str, status: &str) -> StreamRow {
    StreamRow {
        stream_id: stream_id.to_owned(),
        client_id: client_id.to_owned(),
        aud: r#""https://receiver.example""#.to_owned(),
        events_requested: Some(r#"["urn:example:a","urn:example:b"]"#.to_owned()),
        events_delivered: r#"["urn:example:a"]"#.to_owned(),
        delivery_method: method.to_owned(),
        endpoint_url: Some(format!("https://receiver.example/{stream_id}")),
        authorization_header: Some("Bearer push-secret".to_owned()),
        description: Some(format!("stream {stream_id}")),
        status: status.to_owned(),
        status_reason: None,
        min_verification_interval: 30,
        last_verification_at: None,
        created_at: 100,
        updated_at: 100,
    }
}

fn set(stream_id: &str, jti: &str) -> NewOutboxRow {
    NewOutboxRow {
        stream_id: stream_id.to_owned(),
        jti: jti.to_owned(),
        token: format!("token-{jti}"),
        held: false,
        bypass_status: false,
    }
}

fn held(stream_id: &str, jti: &str) -> NewOutboxRow {
    NewOutboxRow {
        held: true,
        ..set(stream_id, jti)
    }
}

fn announcement(stream_id: &str, jti: &str) -> NewOutboxRow {
    NewOutboxRow {
        bypass_status: true,
        ..set(stream_id, jti)
    }
}

fn subject(stream_id: &str, key: &str, mode: &str, changed_at: i64) -> SubjectRow {
    SubjectRow {
        stream_id: stream_id.to_owned(),
        subject_key: key.to_owned(),
        subject: format!(r#"{{"format":"opaque","id":"{key}"}}"#),
        mode: mode.to_owned(),
        verified: false,
        changed_at,
    }
}

fn received(iss: &str, jti: &str) -> ReceivedEventRow {
    ReceivedEventRow {
        upstream_id: None,
        iss: iss.to_owned(),
        jti: jti.to_owned(),
        token: format!("token-{iss}-{jti}"),
        claims: format!(r#"{{"iss":"{iss}","jti":"{jti}"}}"#),
        event_type: "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
            .to_owned(),
        arrived_at: 100,
        outcome: "applied".to_owned(),
    }
}

/// Claims every due SET at `now` until `until`, sorted by row id.
async fn lease(store: &SharedStore, now: i64, until: i64) -> Vec<LeasedSet> {
    let mut leased = store
        .lease_due(Lease {
            now,
            limit: 1000,
            until,
            owner: "test-worker",
        })
        .await
        .unwrap();
    leased.sort_by_key(|set| set.id);
    leased
}

fn leased_jtis(leased: &[LeasedSet]) -> Vec<&str> {
    leased.iter().map(|set| set.jti.as_str()).collect()
}

async fn entries(store: &SharedStore, stream_id: &str, state: &str) -> Vec<OutboxEntry> {
    store.outbox_entries(stream_id, state, 1000).await.unwrap()
}

fn entry_jtis(entries: &[OutboxEntry]) -> Vec<&str> {
    entries.iter().map(|entry| entry.jti.as_str()).collect()
}

/// The id of the row of `jti` in state `state`.
async fn row_id(store: &SharedStore, stream_id: &str, state: &str, jti: &str) -> i64 {
    entries(store, stream_id, state)
        .await
        .iter()
        .find(|entry| entry.jti == jti)
        .unwrap_or_else(|| panic!("{jti} is {state} on {stream_id}"))
        .id
}

// Migrations.

#[tokio::test]
async fn connecting_twice_to_one_database_keeps_schema_and_data() {
    for (db, first) in backends().await {
        let b = db.backend();
        first.insert_client(&client("c1", 100)).await.unwrap();

        let second = storage::connect(&db.url, 2)
            .await
            .unwrap_or_else(|error| panic!("{b}: second connect: {error}"));
        assert_eq!(
            second.get_client("c1").await.unwrap(),
            client("c1", 100),
            "{b}: the row written before reconnecting"
        );
        second.insert_client(&client("c2", 200)).await.unwrap();
        let third = storage::connect(&db.url, 1)
            .await
            .unwrap_or_else(|error| panic!("{b}: third connect: {error}"));
        assert_eq!(
            third.list_clients().await.unwrap(),
            vec![client("c1", 100), client("c2", 200)],
            "{b}: both rows through a third connection"
        );
        assert_eq!(first.list_clients().await.unwrap().len(), 2, "{b}");
    }
}

// Signing keys.

#[tokio::test]
async fn signing_keys_list_oldest_first_and_reject_a_duplicate_kid() {
    for (db, store) in backends().await {
        let b = db.backend();
        assert!(store.list_signing_keys().await.unwrap().is_empty(), "{b}");
        store
            .insert_signing_key(&key("k2", 200, None))
            .await
            .unwrap();
        store
            .insert_signing_key(&key("k1", 100, Some(900)))
            .await
            .unwrap();
        // Same creation time as k2: insertion order decides.
        store
            .insert_signing_key(&key("k3", 200, None))
            .await
            .unwrap();
        assert_eq!(
            store.list_signing_keys().await.unwrap(),
            vec![
                key("k1", 100, Some(900)),
                key("k2", 200, None),
                key("k3", 200, None)
            ],
            "{b}: oldest first"
        );
        assert_conflict(
            store.insert_signing_key(&key("k1", 300, None)).await,
            &format!("{b}: duplicate kid"),
        );
        assert_eq!(store.list_signing_keys().await.unwrap().len(), 3, "{b}");
    }
}

#[tokio::test]
async fn rotating_a_signing_key_retires_previous_keys_at_the_earlier_time() {
    for (db, store) in backends().await {
        let b = db.backend();
        store
            .insert_signing_key(&key("open", 100, None))
            .await
            .unwrap();
        store
            .insert_signing_key(&key("late", 110, Some(5000)))
            .await
            .unwrap();
        store
            .insert_signing_key(&key("early", 120, Some(250)))
            .await
            .unwrap();

        store
            .rotate_signing_key(&key("new", 200, None), 300)
            .await
            .unwrap();
        assert_eq!(
            store.list_signing_keys().await.unwrap(),
            vec![
                key("open", 100, Some(300)),
                key("late", 110, Some(300)),
                key("early", 120, Some(250)),
                key("new", 200, None),
            ],
            "{b}: previous keys retire at min(existing, new); the new key is newest"
        );

        // A failed insert rolls the retirement back: one transaction.
        assert_conflict(
            store.rotate_signing_key(&key("new", 400, None), 450).await,
            &format!("{b}: rotation to a duplicate kid"),
        );
        let keys = store.list_signing_keys().await.unwrap();
        assert_eq!(keys.len(), 4, "{b}");
        assert_eq!(
            keys.last().unwrap().retires_at,
            None,
            "{b}: the failed rotation retired nothing"
        );
    }
}

// Clients and credentials.

#[tokio::test]
async fn clients_insert_get_list_and_duplicate_or_unknown_ids() {
    for (db, store) in backends().await {
        let b = db.backend();
        store.insert_client(&client("c2", 200)).await.unwrap();
        store.insert_client(&client("c3", 100)).await.unwrap();
        store.insert_client(&client("c1", 100)).await.unwrap();
        assert_eq!(
            store.get_client("c3").await.unwrap(),
            client("c3", 100),
            "{b}: round trip"
        );
        assert_eq!(
            store.list_clients().await.unwrap(),
            vec![client("c1", 100), client("c3", 100), client("c2", 200)],
            "{b}: by creation time, then id"
        );
        assert_conflict(
            store.insert_client(&client("c1", 300)).await,
            &format!("{b}: duplicate client_id"),
        );
        assert_eq!(store.get_client("c1").await.unwrap().created_at, 100, "{b}");
        assert_not_found(store.get_client("nobody").await, &format!("{b}: get"));
    }
}

#[tokio::test]
async fn set_client_secret_replaces_only_that_clients_hash() {
    for (db, store) in backends().await {
        let b = db.backend();
        store.insert_client(&client("c1", 100)).await.unwrap();
        store.insert_client(&client("c2", 100)).await.unwrap();
        store.set_client_secret("c1", "rotated").await.unwrap();
        assert_eq!(
            store.get_client("c1").await.unwrap().secret_hash,
            "rotated",
            "{b}"
        );
        assert_eq!(
            store.get_client("c2").await.unwrap(),
            client("c2", 100),
            "{b}: the other client is unchanged"
        );
        assert_not_found(
            store.set_client_secret("nobody", "x").await,
            &format!("{b}: unknown client"),
        );
    }
}

#[tokio::test]
async fn revoke_client_also_revokes_its_credentials_only() {
    for (db, store) in backends().await {
        let b = db.backend();
        store.insert_client(&client("c1", 100)).await.unwrap();
        store.insert_client(&client("c2", 100)).await.unwrap();
        for row in [
            credential("r1", "receiver", Some("c1"), 100),
            credential("r2", "receiver", Some("c1"), 110),
            credential("r3", "receiver", Some("c2"), 120),
            credential("p1", "publisher", None, 130),
        ] {
            store.insert_credential(&row).await.unwrap();
        }
        store.revoke_credential("r2", 50).await.unwrap();

        store.revoke_client("c1", 300).await.unwrap();
        assert_eq!(
            store.get_client("c1").await.unwrap().revoked_at,
            Some(300),
            "{b}"
        );
        assert_eq!(
            store.get_client("c2").await.unwrap().revoked_at,
            None,
            "{b}"
        );
        let revoked_at = |id: &'static str| {
            let store = store.clone();
            async move {
                store
                    .find_credential_by_token_hash(&format!("token-hash-{id}"))
                    .await
                    .unwrap()
                    .revoked_at
            }
        };
        assert_eq!(revoked_at("r1").await, Some(300), "{b}: c1's credential");
        assert_eq!(
            revoked_at("r2").await,
            Some(50),
            "{b}: keeps its first revocation"
        );
        assert_eq!(revoked_at("r3").await, None, "{b}: c2's credential");
        assert_eq!(revoked_at("p1").await, None, "{b}: a publisher credential");

        // Revoking again changes no time.
        let _ = store.revoke_client("c1", 400).await;
        assert_eq!(
            store.get_client("c1").await.unwrap().revoked_at,
            Some(300),
            "{b}"
        );
        assert_eq!(revoked_at("r1").await, Some(300), "{b}");
        assert_not_found(
            store.revoke_client("nobody", 300).await,
            &format!("{b}: unknown client"),
        );
    }
}

#[tokio::test]
async fn credentials_insert_find_list_by_kind_and_revoke_once() {
    for (db, store) in backends().await {
        let b = db.backend();
        store.insert_client(&client("c1", 100)).await.unwrap();
        for row in [
            credential("a2", "admin", None, 200),
            credential("a1", "admin", None, 100),
            credential("p1", "publisher", None, 100),
            credential("r1", "receiver", Some("c1"), 100),
        ] {
            store.insert_credential(&row).await.unwrap();
        }
        assert_eq!(
            store
                .find_credential_by_token_hash("token-hash-r1")
                .await
                .unwrap(),
            credential("r1", "receiver", Some("c1"), 100),
            "{b}: round trip"
        );
        assert_eq!(
            store.list_credentials("admin").await.unwrap(),
            vec![
                credential("a1", "admin", None, 100),
                credential("a2", "admin", None, 200)
            ],
            "{b}: admins, oldest first"
        );
        assert_eq!(
            store.list_credentials("publisher").await.unwrap(),
            vec![credential("p1", "publisher", None, 100)],
            "{b}"
        );
        assert_eq!(
            store.list_credentials("receiver").await.unwrap().len(),
            1,
            "{b}"
        );

        assert_conflict(
            store
                .insert_credential(&credential("a1", "admin", None, 300))
                .await,
            &format!("{b}: duplicate id"),
        );
        let same_hash = CredentialRow {
            token_hash: "token-hash-a1".to_owned(),
            ..credential("a3", "admin", None, 300)
        };
        assert_conflict(
            store.insert_credential(&same_hash).await,
            &format!("{b}: duplicate token hash"),
        );
        assert_not_found(
            store.find_credential_by_token_hash("no-such-hash").await,
            &format!("{b}: unknown hash"),
        );

        store.revoke_credential("a1", 300).await.unwrap();
        assert_eq!(
            store
                .find_credential_by_token_hash("token-hash-a1")
                .await
                .unwrap()
                .revoked_at,
            Some(300),
            "{b}"
        );
        assert_not_found(
            store.revoke_credential("a1", 400).await,
            &format!("{b}: second revoke"),
        );
        assert_eq!(
            store.list_credentials("admin").await.unwrap()[0].revoked_at,
            Some(300),
            "{b}: the second revoke changed nothing"
        );
        assert_not_found(
            store.revoke_credential("nobody", 300).await,
            &format!("{b}: unknown credential"),
        );
    }
}

// Streams.

#[tokio::test]
async fn streams_insert_get_list_per_client_and_all() {
    for (db, store) in backends().await {
        let b = db.backend();
        let mut sb = stream("sb", "c1", PUSH, "enabled");
        sb.created_at = 200;
        let mut sa = stream("sa", "c1", POLL, "paused");
        sa.status_reason = Some("maintenance".to_owned());
        sa.last_verification_at = Some(90);
        sa.events_requested = None;
        sa.authorization_header = None;
        let mut sc = stream("sc", "c2", PUSH, "disabled");
        sc.created_at = 150;
        for row in [&sb, &sa, &sc] {
            store.insert_stream(row).await.unwrap();
        }
        assert_eq!(store.get_stream("sa").await.unwrap(), sa, "{b}: round trip");
        assert_eq!(store.get_stream("sb").await.unwrap(), sb, "{b}: round trip");
        assert_eq!(
            store.list_streams(Some("c1")).await.unwrap(),
            vec![sa.clone(), sb.clone()],
            "{b}: c1's streams, oldest first"
        );
        assert_eq!(
            store.list_streams(None).await.unwrap(),
            vec![sa.clone(), sc.clone(), sb.clone()],
            "{b}: every stream, oldest first"
        );
        assert!(
            store.list_streams(Some("nobody")).await.unwrap().is_empty(),
            "{b}"
        );
        assert_conflict(
            store
                .insert_stream(&stream("sa", "c2", PUSH, "enabled"))
                .await,
            &format!("{b}: duplicate stream_id"),
        );
        assert_eq!(store.get_stream("sa").await.unwrap(), sa, "{b}");
        assert_not_found(store.get_stream("nope").await, &format!("{b}: get"));
    }
}

#[tokio::test]
async fn update_stream_replaces_configuration_but_not_status() {
    for (db, store) in backends().await {
        let b = db.backend();
        let original = stream("s1", "c1", PUSH, "enabled");
        store.insert_stream(&original).await.unwrap();
        store
            .insert_stream(&stream("s2", "c1", PUSH, "enabled"))
            .await
            .unwrap();

        let changed = StreamRow {
            aud: r#"["https://a.example","https://b.example"]"#.to_owned(),
            events_requested: None,
            events_delivered: "[]".to_owned(),
            delivery_method: POLL.to_owned(),
            endpoint_url: Some("https://ssfd.example/poll/s1".to_owned()),
            authorization_header: None,
            description: None,
            min_verification_interval: 600,
            updated_at: 500,
            // Not configuration: ignored by update_stream.
            status: "disabled".to_owned(),
            status_reason: Some("ignored".to_owned()),
            last_verification_at: Some(499),
            created_at: 1,
            ..original.clone()
        };
        store.update_stream(&changed).await.unwrap();
        let expected = StreamRow {
            status: original.status.clone(),
            status_reason: original.status_reason.clone(),
            last_verification_at: original.last_verification_at,
            created_at: original.created_at,
            ..changed.clone()
        };
        assert_eq!(store.get_stream("s1").await.unwrap(), expected, "{b}");
        assert_eq!(
            store.get_stream("s2").await.unwrap(),
            stream("s2", "c1", PUSH, "enabled"),
            "{b}: the other stream is unchanged"
        );
        let unknown = StreamRow {
            stream_id: "nope".to_owned(),
            ..changed
        };
        assert_not_found(
            store.update_stream(&unknown).await,
            &format!("{b}: unknown stream"),
        );
    }
}

#[tokio::test]
async fn delete_stream_cascades_to_subjects_outbox_and_stats() {
    for (db, store) in backends().await {
        let b = db.backend();
        for id in ["gone", "kept"] {
            store
                .insert_stream(&stream(id, "c1", PUSH, "enabled"))
                .await
                .unwrap();
            store
                .upsert_subject(&subject(id, "email:a", "added", 100))
                .await
                .unwrap();
            store
                .enqueue(
                    &[set(id, "delivered"), set(id, "waiting"), set(id, "dead")],
                    100,
                )
                .await
                .unwrap();
            let delivered = row_id(&store, id, "pending", "delivered").await;
            store.mark_delivered(&[delivered], 110).await.unwrap();
            let dead = row_id(&store, id, "pending", "dead").await;
            store.dead_letter(dead, "gave up", 120).await.unwrap();
        }

        store.delete_stream("gone").await.unwrap();
        assert_not_found(store.get_stream("gone").await, &format!("{b}: deleted"));
        assert!(
            store.list_subjects(Some("gone")).await.unwrap().is_empty(),
            "{b}: subjects cascade"
        );
        for state in ["pending", "dead"] {
            assert!(
                entries(&store, "gone", state).await.is_empty(),
                "{b}: {state} outbox rows cascade"
            );
        }
        assert_eq!(
            store.delivery_stats("gone").await.unwrap(),
            DeliveryStats::default(),
            "{b}: stats cascade"
        );

        assert_eq!(store.list_subjects(None).await.unwrap().len(), 1, "{b}");
        assert_eq!(
            entry_jtis(&entries(&store, "kept", "pending").await),
            ["waiting"],
            "{b}: the other stream keeps its outbox"
        );
        assert_eq!(entries(&store, "kept", "dead").await.len(), 1, "{b}");
        assert_eq!(
            store.delivery_stats("kept").await.unwrap().delivered,
            1,
            "{b}"
        );

        assert_not_found(
            store.delete_stream("gone").await,
            &format!("{b}: second delete"),
        );
        // Nothing of the old stream is left to collide with.
        store
            .insert_stream(&stream("gone", "c1", PUSH, "enabled"))
            .await
            .unwrap();
        store.enqueue(&[set("gone", "waiting")], 200).await.unwrap();
    }
}

#[tokio::test]
async fn pausing_holds_pending_sets_but_not_bypass_sets() {
    for (db, store) in backends().await {
        let b = db.backend();
        store
            .insert_stream(&stream("s", "c1", PUSH, "enabled"))
            .await
            .unwrap();
        store
            .insert_stream(&stream("other", "c1", PUSH, "enabled"))
            .await
            .unwrap();
        store
            .enqueue(
                &[
                    set("s", "plain"),
                    announcement("s", "old-announce"),
                    set("other", "o1"),
                ],
                100,
            )
            .await
            .unwrap();

        store
            .set_stream_status(
                "s",
                "paused",
                Some("maintenance"),
                150,
                &[announcement("s", "paused-announce")],
            )
            .await
            .unwrap();
        let row = store.get_stream("s").await.unwrap();
        assert_eq!(
            (
                row.status.as_str(),
                row.status_reason.as_deref(),
                row.updated_at
            ),
            ("paused", Some("maintenance"), 150),
            "{b}"
        );
        assert_eq!(
            entry_jtis(&entries(&store, "s", "held").await),
            ["plain"],
            "{b}: pending SETs are held"
        );
        assert_eq!(
            entry_jtis(&entries(&store, "s", "pending").await),
            ["old-announce", "paused-announce"],
            "{b}: bypass SETs and the announcement stay pending"
        );
        assert_eq!(
            entry_jtis(&entries(&store, "other", "pending").await),
            ["o1"],
            "{b}: other streams are untouched"
        );
        assert_eq!(
            leased_jtis(&lease(&store, 150, 1000).await),
            ["old-announce", "o1", "paused-announce"],
            "{b}: a paused stream sends only bypass SETs"
        );
    }
}

#[tokio::test]
async fn enabling_releases_held_sets() {
    for (db, store) in backends().await {
        let b = db.backend();
        store
            .insert_stream(&stream("s", "c1", PUSH, "paused"))
            .await
            .unwrap();
        store
            .enqueue(&[held("s", "h1"), held("s", "h2")], 100)
            .await
            .unwrap();
        assert!(
            lease(&store, 200, 1000).await.is_empty(),
            "{b}: held SETs are not sent"
        );

        store
            .set_stream_status("s", "enabled", None, 300, &[announcement("s", "enabled")])
            .await
            .unwrap();
        let row = store.get_stream("s").await.unwrap();
        assert_eq!(
            (row.status.as_str(), row.status_reason, row.updated_at),
            ("enabled", None, 300),
            "{b}"
        );
        assert!(entries(&store, "s", "held").await.is_empty(), "{b}");
        assert_eq!(
            leased_jtis(&lease(&store, 300, 1000).await),
            ["h1", "h2", "enabled"],
            "{b}: released SETs are due"
        );
    }
}

#[tokio::test]
async fn disabling_drops_pending_and_held_sets_except_bypass_sets() {
    for (db, store) in backends().await {
        let b = db.backend();
        store
            .insert_stream(&stream("s", "c1", PUSH, "enabled"))
            .await
            .unwrap();
        store
            .enqueue(
                &[
                    set("s", "pending"),
                    held("s", "held"),
                    announcement("s", "bypass"),
                    set("s", "dead"),
                    set("s", "rejected"),
                ],
                100,
            )
            .await
            .unwrap();
        let dead = row_id(&store, "s", "pending", "dead").await;
        store.dead_letter(dead, "gave up", 110).await.unwrap();
        store
            .reject_sets("s", &[("rejected".to_owned(), "invalid".to_owned())], 110)
            .await
            .unwrap();

        store
            .set_stream_status(
                "s",
                "disabled",
                Some("receiver gone"),
                200,
                &[announcement("s", "disabled")],
            )
            .await
            .unwrap();
        assert_eq!(
            store.get_stream("s").await.unwrap().status,
            "disabled",
            "{b}"
        );
        assert_eq!(
            entry_jtis(&entries(&store, "s", "pending").await),
            ["bypass", "disabled"],
            "{b}: only bypass SETs and the announcement remain pending"
        );
        assert!(
            entries(&store, "s", "held").await.is_empty(),
            "{b}: held SETs are dropped"
        );
        assert_eq!(
            entry_jtis(&entries(&store, "s", "dead").await),
            ["dead"],
            "{b}"
        );
        assert_eq!(
            entry_jtis(&entries(&store, "s", "rejected").await),
            ["rejected"],
            "{b}"
        );
        assert_eq!(
            leased_jtis(&lease(&store, 200, 1000).await),
            ["bypass", "disabled"],
            "{b}: a disabled stream sends only bypass SETs"
        );
    }
}

#[tokio::test]
async fn set_stream_status_is_one_transaction() {
    for (db, store) in backends().await {
        let b = db.backend();
        store
            .insert_stream(&stream("s", "c1", PUSH, "enabled"))
            .await
            .unwrap();
        store
            .enqueue(&[set("s", "p1"), set("s", "dup")], 100)
            .await
            .unwrap();
        assert_conflict(
            store
                .set_stream_status("s", "paused", None, 200, &[announcement("s", "dup")])
                .await,
            &format!("{b}: announcement with a taken jti"),
        );
        let row = store.get_stream("s").await.unwrap();
        assert_eq!(
            (row.status.as_str(), row.updated_at),
            ("enabled", 100),
            "{b}: the status change was rolled back"
        );
        assert!(
            entries(&store, "s", "held").await.is_empty(),
            "{b}: nothing was held"
        );
        assert_eq!(entries(&store, "s", "pending").await.len(), 2, "{b}");

        assert_not_found(
            store
                .set_stream_status("nope", "paused", None, 200, &[])
                .await,
            &format!("{b}: unknown stream"),
        );
    }
}

#[tokio::test]
async fn record_verification_updates_last_verification_and_enqueues() {
    for (db, store) in backends().await {
        let b = db.backend();
        store
            .insert_stream(&stream("s", "c1", POLL, "enabled"))
            .await
            .unwrap();
        store
            .record_verification("s", 300, &set("s", "v1"))
            .await
            .unwrap();
        assert_eq!(
            store.get_stream("s").await.unwrap().last_verification_at,
            Some(300),
            "{b}"
        );
        let pending = entries(&store, "s", "pending").await;
        assert_eq!(entry_jtis(&pending), ["v1"], "{b}");
        assert_eq!(pending[0].created_at, 300, "{b}");

        store
            .record_verification("s", 350, &held("s", "v2"))
            .await
            .unwrap();
        assert_eq!(
            entry_jtis(&entries(&store, "s", "held").await),
            ["v2"],
            "{b}"
        );

        assert_conflict(
            store.record_verification("s", 400, &set("s", "v1")).await,
            &format!("{b}: a taken jti"),
        );
        assert_eq!(
            store.get_stream("s").await.unwrap().last_verification_at,
            Some(350),
            "{b}: the failed verification was rolled back"
        );
        assert_not_found(
            store
                .record_verification("nope", 400, &set("nope", "v3"))
                .await,
            &format!("{b}: unknown stream"),
        );
    }
}

// Subjects.

#[tokio::test]
async fn subjects_upsert_replace_delete_and_list() {
    for (db, store) in backends().await {
        let b = db.backend();
        for id in ["s1", "s2"] {
            store
                .insert_stream(&stream(id, "c1", POLL, "enabled"))
                .await
                .unwrap();
        }
        let a1 = subject("s1", "email:a", "added", 100);
        let b1 = subject("s1", "email:b", "added", 90);
        let a2 = subject("s2", "email:a", "added", 80);
        for row in [&a1, &b1, &a2] {
            store.upsert_subject(row).await.unwrap();
        }
        assert_eq!(
            store.list_subjects(Some("s1")).await.unwrap(),
            vec![b1.clone(), a1.clone()],
            "{b}: s1's subjects"
        );

        let replaced = SubjectRow {
            subject: r#"{"format":"email","email":"a@example.com"}"#.to_owned(),
            mode: "removed".to_owned(),
            verified: true,
            changed_at: 120,
            ..a1.clone()
        };
        store.upsert_subject(&replaced).await.unwrap();
        assert_eq!(
            store.list_subjects(Some("s1")).await.unwrap(),
            vec![b1.clone(), replaced.clone()],
            "{b}: the same key is replaced, not added"
        );
        assert_eq!(
            store.list_subjects(None).await.unwrap(),
            vec![b1.clone(), replaced.clone(), a2.clone()],
            "{b}: every stream's subjects"
        );

        store.delete_subject("s1", "email:a").await.unwrap();
        assert_not_found(
            store.delete_subject("s1", "email:a").await,
            &format!("{b}: second delete"),
        );
        assert_not_found(
            store.delete_subject("s2", "email:b").await,
            &format!("{b}: a key of another stream"),
        );
        assert_eq!(
            store.list_subjects(None).await.unwrap(),
            vec![b1, a2],
            "{b}: only that subject is gone"
        );
    }
}

// Outbox.

#[tokio::test]
async fn enqueue_is_all_or_nothing() {
    for (db, store) in backends().await {
        let b = db.backend();
        for id in ["s", "t"] {
            store
                .insert_stream(&stream(id, "c1", POLL, "enabled"))
                .await
                .unwrap();
        }
        assert_conflict(
            store
                .enqueue(&[set("s", "a"), set("s", "b"), set("s", "a")], 100)
                .await,
            &format!("{b}: a batch repeating a jti"),
        );
        assert!(
            store.pending_sets("s", 100).await.unwrap().is_empty(),
            "{b}: nothing of the failed batch was inserted"
        );

        store.enqueue(&[set("s", "c")], 100).await.unwrap();
        assert_conflict(
            store.enqueue(&[set("s", "d"), set("s", "c")], 110).await,
            &format!("{b}: a batch with a jti already queued"),
        );
        assert_eq!(
            entry_jtis(&entries(&store, "s", "pending").await),
            ["c"],
            "{b}: only the earlier SET"
        );

        store
            .enqueue(&[set("t", "c"), held("t", "d")], 120)
            .await
            .unwrap();
        store.enqueue(&[], 120).await.unwrap();
        assert_eq!(
            entry_jtis(&entries(&store, "t", "pending").await),
            ["c"],
            "{b}"
        );
        assert_eq!(
            entry_jtis(&entries(&store, "t", "held").await),
            ["d"],
            "{b}"
        );
    }
}

#[tokio::test]
async fn lease_due_claims_only_due_pending_sets_of_sendable_push_streams() {
    for (db, store) in backends().await {
        let b = db.backend();
        for (id, method, status) in [
            ("on", PUSH, "enabled"),
            ("paused", PUSH, "paused"),
            ("off", PUSH, "disabled"),
            ("poll", POLL, "enabled"),
        ] {
            store
                .insert_stream(&stream(id, "c1", method, status))
                .await
                .unwrap();
        }
        store
            .enqueue(
                &[
                    set("on", "due"),
                    held("on", "held"),
                    set("on", "dead"),
                    set("on", "rejected"),
                    set("paused", "paused-plain"),
                    announcement("paused", "paused-announce"),
                    set("off", "off-plain"),
                    announcement("off", "off-announce"),
                    set("poll", "poll"),
                    announcement("poll", "poll-announce"),
                ],
                100,
            )
            .await
            .unwrap();
        store.enqueue(&[set("on", "later")], 300).await.unwrap();
        let dead = row_id(&store, "on", "pending", "dead").await;
        store.dead_letter(dead, "gave up", 100).await.unwrap();
        store
            .reject_sets("on", &[("rejected".to_owned(), "bad".to_owned())], 100)
            .await
            .unwrap();

        let leased = lease(&store, 299, 1000).await;
        assert_eq!(
            leased_jtis(&leased),
            ["due", "paused-announce", "off-announce"],
            "{b}: due pending SETs of enabled push streams, and bypass SETs"
        );
        let first = &leased[0];
        assert_eq!(
            (first.stream_id.as_str(), first.token.as_str()),
            ("on", "token-due"),
            "{b}"
        );
        assert_eq!(
            (first.attempts, first.created_at, first.bypass_status),
            (0, 100, false),
            "{b}"
        );
        assert!(leased[1].bypass_status, "{b}");

        assert_eq!(
            leased_jtis(&lease(&store, 300, 1000).await),
            ["later"],
            "{b}: a SET is due at its next_attempt_at"
        );
    }
}

#[tokio::test]
async fn lease_due_takes_the_oldest_rows_up_to_the_limit() {
    for (db, store) in backends().await {
        let b = db.backend();
        store
            .insert_stream(&stream("s", "c1", PUSH, "enabled"))
            .await
            .unwrap();
        store
            .enqueue(&[set("s", "z"), set("s", "y"), set("s", "x")], 100)
            .await
            .unwrap();
        let mut first = store
            .lease_due(Lease {
                now: 100,
                limit: 2,
                until: 1000,
                owner: "w1",
            })
            .await
            .unwrap();
        first.sort_by_key(|set| set.id);
        assert_eq!(leased_jtis(&first), ["z", "y"], "{b}: lowest ids first");
        assert_eq!(
            leased_jtis(&lease(&store, 100, 1000).await),
            ["x"],
            "{b}: the rest"
        );
    }
}

#[tokio::test]
async fn a_leased_set_is_not_leased_again_until_the_lease_lapses() {
    for (db, store) in backends().await {
        let b = db.backend();
        store
            .insert_stream(&stream("s", "c1", PUSH, "enabled"))
            .await
            .unwrap();
        store
            .enqueue(&[set("s", "a"), set("s", "b")], 100)
            .await
            .unwrap();
        let first = lease(&store, 100, 160).await;
        assert_eq!(leased_jtis(&first), ["a", "b"], "{b}");
        assert!(
            lease(&store, 100, 160).await.is_empty(),
            "{b}: claimed at once"
        );
        assert!(
            lease(&store, 159, 220).await.is_empty(),
            "{b}: claimed just before `until`"
        );
        let again = lease(&store, 161, 220).await;
        assert_eq!(
            again.iter().map(|set| set.id).collect::<Vec<_>>(),
            first.iter().map(|set| set.id).collect::<Vec<_>>(),
            "{b}: claimable again after `until`"
        );
        assert!(
            lease(&store, 200, 260).await.is_empty(),
            "{b}: the new lease holds"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_lease_due_callers_never_share_a_row() {
    const ROWS: usize = 200;
    const WORKERS: usize = 8;
    for (db, store) in backends().await {
        let b = db.backend();
        store
            .insert_stream(&stream("s", "c1", PUSH, "enabled"))
            .await
            .unwrap();
        let rows: Vec<_> = (0..ROWS)
            .map(|i| set("s", &format!("jti-{i:03}")))
            .collect();
        store.enqueue(&rows, 100).await.unwrap();

        let start = Arc::new(tokio::sync::Barrier::new(WORKERS));
        let mut workers = JoinSet::new();
        for worker in 0..WORKERS {
            let store = store.clone();
            let start = start.clone();
            workers.spawn(async move {
                let owner = format!("worker-{worker}");
                start.wait().await;
                let mut claimed = Vec::new();
                loop {
                    let batch = store
                        .lease_due(Lease {
                            now: 100,
                            limit: 7,
                            until: 1000,
                            owner: &owner,
                        })
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return claimed;
                    }
                    claimed.extend(batch.into_iter().map(|set| set.id));
                    // More than every row means rows are handed out again: stop, and fail below.
                    if claimed.len() > ROWS {
                        return claimed;
                    }
                }
            });
        }
        let mut claimed = Vec::new();
        while let Some(batch) = workers.join_next().await {
            claimed.extend(batch.unwrap());
        }
        let distinct: HashSet<i64> = claimed.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            claimed.len(),
            "{b}: a row was claimed by two callers"
        );
        assert_eq!(claimed.len(), ROWS, "{b}: every row was claimed once");
        assert!(lease(&store, 100, 1000).await.is_empty(), "{b}");
    }
}

#[tokio::test]
async fn mark_delivered_removes_the_set_and_counts_it() {
    for (db, store) in backends().await {
        let b = db.backend();
        store
            .insert_stream(&stream("s", "c1", PUSH, "enabled"))
            .await
            .unwrap();
        assert_eq!(
            store.delivery_stats("s").await.unwrap(),
            DeliveryStats::default(),
            "{b}: no activity yet"
        );
        store
            .enqueue(&[set("s", "a"), set("s", "b"), set("s", "c")], 100)
            .await
            .unwrap();
        let leased = lease(&store, 100, 200).await;

        store.mark_delivered(&[leased[0].id], 150).await.unwrap();
        assert_eq!(
            entry_jtis(&entries(&store, "s", "pending").await),
            ["b", "c"],
            "{b}: the delivered SET left the outbox"
        );
        let stats = store.delivery_stats("s").await.unwrap();
        assert_eq!(
            (stats.delivered, stats.failed, stats.last_success_at),
            (1, 0, Some(150)),
            "{b}"
        );

        // The push worker records a batch of deliveries in one call.
        store
            .mark_delivered(&[leased[1].id, leased[2].id], 170)
            .await
            .unwrap();
        let stats = store.delivery_stats("s").await.unwrap();
        assert_eq!(
            (stats.delivered, stats.last_success_at),
            (3, Some(170)),
            "{b}"
        );
        assert!(
            lease(&store, 10_000, 20_000).await.is_empty(),
            "{b}: nothing left to send"
        );
    }
}

#[tokio::test]
async fn schedule_retry_counts_the_attempt_and_defers_the_set() {
    for (db, store) in backends().await {
        let b = db.backend();
        store
            .insert_stream(&stream("s", "c1", PUSH, "enabled"))
            .await
            .unwrap();
        store.enqueue(&[set("s", "a")], 100).await.unwrap();
        let id = lease(&store, 100, 10_000).await[0].id;

        store
            .schedule_retry(id, 400, "HTTP 503", 110)
            .await
            .unwrap();
        assert!(
            lease(&store, 399, 10_000).await.is_empty(),
            "{b}: not due before next_attempt_at"
        );
        let retried = lease(&store, 400, 10_000).await;
        assert_eq!(
            (retried[0].id, retried[0].attempts),
            (id, 1),
            "{b}: due again at next_attempt_at, lease released"
        );
        let entry = &entries(&store, "s", "pending").await[0];
        assert_eq!(
            (entry.attempts, entry.last_error.as_deref()),
            (1, Some("HTTP 503")),
            "{b}"
        );
        assert_eq!(
            store.delivery_stats("s").await.unwrap(),
            DeliveryStats {
                failed: 1,
                last_failure_at: Some(110),
                last_error: Some("HTTP 503".to_owned()),
                ..DeliveryStats::default()
            },
            "{b}"
        );

        store
            .schedule_retry(id, 800, "connection refused", 410)
            .await
            .unwrap();
        let entry = &entries(&store, "s", "pending").await[0];
        assert_eq!(
            (entry.attempts, entry.last_error.as_deref()),
            (2, Some("connection refused")),
            "{b}"
        );
        let stats = store.delivery_stats("s").await.unwrap();
        assert_eq!(
            (stats.failed, stats.dead, stats.last_failure_at),
            (2, 0, Some(410)),
            "{b}"
        );
        assert_eq!(
            stats.last_error.as_deref(),
            Some("connection refused"),
            "{b}"
        );
        assert_not_found(
            store.schedule_retry(id + 1000, 800, "x", 410).await,
            &format!("{b}: unknown row"),
        );
    }
}

#[tokio::test]
async fn dead_letter_keeps_the_set_and_replay_dead_requeues_it() {
    for (db, store) in backends().await {
        let b = db.backend();
        for id in ["s", "t"] {
            store
                .insert_stream(&stream(id, "c1", PUSH, "enabled"))
                .await
                .unwrap();
        }
        store
            .enqueue(&[set("s", "a"), set("s", "b"), set("t", "a")], 100)
            .await
            .unwrap();
        let leased = lease(&store, 100, 150).await;
        assert_eq!(leased.len(), 3, "{b}");
        store
            .dead_letter(leased[0].id, "gave up", 120)
            .await
            .unwrap();
        store
            .dead_letter(leased[2].id, "gave up on t", 120)
            .await
            .unwrap();

        let dead = entries(&store, "s", "dead").await;
        assert_eq!(entry_jtis(&dead), ["a"], "{b}");
        assert_eq!(
            (
                dead[0].state.as_str(),
                dead[0].attempts,
                dead[0].last_error.as_deref()
            ),
            ("dead", 1, Some("gave up")),
            "{b}"
        );
        assert_eq!(
            entry_jtis(&entries(&store, "s", "pending").await),
            ["b"],
            "{b}"
        );
        assert_eq!(
            leased_jtis(&lease(&store, 10_000, 20_000).await),
            ["b"],
            "{b}: a dead SET is not sent"
        );
        let stats = store.delivery_stats("s").await.unwrap();
        assert_eq!(
            (stats.failed, stats.dead, stats.last_error.as_deref()),
            (1, 1, Some("gave up")),
            "{b}"
        );
        assert_not_found(
            store.dead_letter(leased[2].id + 1000, "x", 120).await,
            &format!("{b}: unknown row"),
        );

        assert_eq!(store.replay_dead("s", 20_000).await.unwrap(), 1, "{b}");
        assert!(entries(&store, "s", "dead").await.is_empty(), "{b}");
        assert_eq!(
            entry_jtis(&entries(&store, "t", "dead").await),
            ["a"],
            "{b}: another stream's dead letters stay"
        );
        let replayed = lease(&store, 20_000, 30_000).await;
        assert_eq!(
            (leased_jtis(&replayed), replayed[0].attempts),
            (vec!["a"], 0),
            "{b}: due again, attempts reset"
        );
        assert_eq!(store.replay_dead("s", 20_000).await.unwrap(), 0, "{b}");
    }
}

#[tokio::test]
async fn pending_sets_returns_poll_sets_oldest_first_up_to_a_limit() {
    for (db, store) in backends().await {
        let b = db.backend();
        for id in ["p", "q"] {
            store
                .insert_stream(&stream(id, "c1", POLL, "enabled"))
                .await
                .unwrap();
        }
        store
            .enqueue(
                &[set("p", "c"), set("q", "q1"), set("p", "a"), held("p", "h")],
                100,
            )
            .await
            .unwrap();
        store.enqueue(&[set("p", "b")], 200).await.unwrap();
        let pair = |jti: &str| (jti.to_owned(), format!("token-{jti}"));
        assert_eq!(
            store.pending_sets("p", 2).await.unwrap(),
            vec![pair("c"), pair("a")],
            "{b}: oldest first, at most the limit"
        );
        assert_eq!(
            store.pending_sets("p", 10).await.unwrap(),
            vec![pair("c"), pair("a"), pair("b")],
            "{b}: no held SETs, no other stream's"
        );
        assert!(
            store.pending_sets("none", 10).await.unwrap().is_empty(),
            "{b}"
        );
    }
}

#[tokio::test]
async fn acknowledge_removes_only_that_streams_sets_and_counts_them() {
    for (db, store) in backends().await {
        let b = db.backend();
        for id in ["p", "q"] {
            store
                .insert_stream(&stream(id, "c1", POLL, "enabled"))
                .await
                .unwrap();
        }
        store
            .enqueue(
                &[
                    set("p", "shared"),
                    set("p", "x"),
                    set("p", "kept"),
                    set("p", "rejected"),
                    set("q", "shared"),
                ],
                100,
            )
            .await
            .unwrap();
        store
            .reject_sets("p", &[("rejected".to_owned(), "bad".to_owned())], 110)
            .await
            .unwrap();

        let jtis = ["shared", "x", "unknown", "rejected"].map(str::to_owned);
        assert_eq!(
            store.acknowledge("p", &jtis, 150).await.unwrap(),
            2,
            "{b}: two pending SETs acknowledged"
        );
        assert_eq!(
            store.pending_sets("p", 10).await.unwrap(),
            vec![("kept".to_owned(), "token-kept".to_owned())],
            "{b}"
        );
        assert_eq!(
            entry_jtis(&entries(&store, "p", "rejected").await),
            ["rejected"],
            "{b}: a rejected SET is not acknowledged"
        );
        assert_eq!(
            entry_jtis(&entries(&store, "q", "pending").await),
            ["shared"],
            "{b}: the same jti on another stream stays"
        );
        let stats = store.delivery_stats("p").await.unwrap();
        assert_eq!(
            (stats.delivered, stats.last_success_at),
            (2, Some(150)),
            "{b}"
        );
        assert_eq!(store.delivery_stats("q").await.unwrap().delivered, 0, "{b}");

        assert_eq!(
            store.acknowledge("p", &jtis, 160).await.unwrap(),
            0,
            "{b}: acknowledging again removes nothing"
        );
        assert_eq!(store.delivery_stats("p").await.unwrap().delivered, 2, "{b}");
    }
}

#[tokio::test]
async fn reject_sets_keeps_rejected_sets_with_their_error() {
    for (db, store) in backends().await {
        let b = db.backend();
        for id in ["p", "q"] {
            store
                .insert_stream(&stream(id, "c1", POLL, "enabled"))
                .await
                .unwrap();
        }
        store
            .enqueue(&[set("p", "a"), set("p", "b"), set("q", "a")], 100)
            .await
            .unwrap();
        store
            .reject_sets(
                "p",
                &[
                    ("a".to_owned(), "invalid_key: unknown kid".to_owned()),
                    ("unknown".to_owned(), "invalid_request".to_owned()),
                ],
                130,
            )
            .await
            .unwrap();

        let rejected = entries(&store, "p", "rejected").await;
        assert_eq!(entry_jtis(&rejected), ["a"], "{b}");
        assert_eq!(
            (
                rejected[0].state.as_str(),
                rejected[0].last_error.as_deref()
            ),
            ("rejected", Some("invalid_key: unknown kid")),
            "{b}"
        );
        assert_eq!(
            store.pending_sets("p", 10).await.unwrap(),
            vec![("b".to_owned(), "token-b".to_owned())],
            "{b}: a rejected SET is no longer offered"
        );
        assert_eq!(
            store.pending_sets("q", 10).await.unwrap().len(),
            1,
            "{b}: the same jti on another stream stays pending"
        );
        assert_eq!(
            store.delivery_stats("p").await.unwrap(),
            DeliveryStats {
                failed: 1,
                last_failure_at: Some(130),
                last_error: Some("invalid_key: unknown kid".to_owned()),
                ..DeliveryStats::default()
            },
            "{b}: one failure counted, unknown jtis ignored"
        );
    }
}

#[tokio::test]
async fn outbox_entries_lists_one_state_oldest_first_up_to_a_limit() {
    for (db, store) in backends().await {
        let b = db.backend();
        // "s" is enabled, so only the rows asked to be held are held there.
        for (id, status) in [("s", "enabled"), ("t", "paused")] {
            store
                .insert_stream(&stream(id, "c1", PUSH, status))
                .await
                .unwrap();
        }
        store
            .enqueue(&[held("s", "h2"), set("s", "p1"), held("t", "t1")], 100)
            .await
            .unwrap();
        store.enqueue(&[held("s", "h1")], 200).await.unwrap();

        let all_held = entries(&store, "s", "held").await;
        assert_eq!(entry_jtis(&all_held), ["h2", "h1"], "{b}: oldest first");
        assert!(
            all_held
                .iter()
                .all(|entry| entry.state == "held" && entry.stream_id == "s"),
            "{b}"
        );
        assert_eq!(
            all_held
                .iter()
                .map(|entry| entry.created_at)
                .collect::<Vec<_>>(),
            [100, 200],
            "{b}"
        );
        let limited = store.outbox_entries("s", "held", 1).await.unwrap();
        assert_eq!(entry_jtis(&limited), ["h2"], "{b}: the limit");
        assert_eq!(
            entry_jtis(&entries(&store, "s", "pending").await),
            ["p1"],
            "{b}"
        );
        assert!(entries(&store, "s", "dead").await.is_empty(), "{b}");
    }
}

// Received events.

#[tokio::test]
async fn insert_received_deduplicates_on_issuer_and_jti() {
    for (db, store) in backends().await {
        let b = db.backend();
        assert!(
            store
                .insert_received(&received("https://a.example", "j1"))
                .await
                .unwrap(),
            "{b}: first time"
        );
        let replay = ReceivedEventRow {
            token: "a different token".to_owned(),
            arrived_at: 200,
            ..received("https://a.example", "j1")
        };
        assert!(
            !store.insert_received(&replay).await.unwrap(),
            "{b}: the same (iss, jti) again"
        );
        assert!(
            store
                .insert_received(&received("https://b.example", "j1"))
                .await
                .unwrap(),
            "{b}: the same jti from another issuer"
        );
        assert!(
            store
                .insert_received(&received("https://a.example", "j2"))
                .await
                .unwrap(),
            "{b}: another jti from the first issuer"
        );
    }
}
