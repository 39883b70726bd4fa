//! An ssfd transmitter and an ssfd receiver, two servers with separate databases in one
//! process: the receiver registers the transmitter as an upstream, by push and by poll, the
//! transmitter emits every CAEP and RISC event type, and each arrives validated and is stored
//! once.

use std::time::Duration;

use serde_json::json;
use ssfd::protocol::EventType;
use ssfd::receiver::upstreams::{register_poll, register_push, Registration, UpstreamAuth};
use ssfd::transmitter::intake;

use crate::common::TestServer;
use crate::protocol::minimal_payload;

#[tokio::test]
async fn every_event_type_travels_from_transmitter_to_receiver_by_push() {
    every_event_type_travels(true).await;
}

#[tokio::test]
async fn every_event_type_travels_from_transmitter_to_receiver_by_poll() {
    every_event_type_travels(false).await;
}

async fn every_event_type_travels(push: bool) {
    // Short long polls keep the poll test quick.
    let transmitter =
        TestServer::start_with(|config| config.transmitter.poll_max_wait_secs = 2).await;
    let receiver = TestServer::start().await;
    let (client_id, client_secret) = transmitter.client(&["ssf.manage"]).await;
    let events: Vec<EventType> = EventType::KNOWN
        .iter()
        .filter(|t| !t.is_ssf_control())
        .cloned()
        .collect();
    let registration = Registration {
        issuer: transmitter.base.clone(),
        auth: UpstreamAuth::ClientCredentials {
            token_endpoint: None,
            client_id,
            client_secret,
            scope: None,
        },
        events: events.clone(),
    };
    let upstream = if push {
        register_push(&receiver.state, registration).await
    } else {
        register_poll(&receiver.state, registration).await
    }
    .expect("registration succeeds");

    // The verification requested during registration arrives and is confirmed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let row = receiver.store().get_upstream(&upstream.id).await.unwrap();
        if row.verified_at.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the verification never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut sent = Vec::new();
    for event_type in &events {
        let intake = serde_json::from_value(json!({
            "sub_id": {"format": "email", "email": "jane@example.com"},
            "events": {event_type.as_uri(): minimal_payload(event_type)}
        }))
        .unwrap();
        let result = intake::submit(&transmitter.state, intake).await.unwrap();
        assert_eq!(result.sets.len(), 1, "{event_type}");
        sent.push((event_type.clone(), result.sets[0].jti.clone()));
    }

    // Each arrives, validated and stored with its event type.
    for (event_type, jti) in sent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let row = loop {
            if let Some(row) = receiver
                .store()
                .get_received(&transmitter.base, &jti)
                .await
                .unwrap()
            {
                break row;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{event_type} ({jti}) never arrived"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(row.event_type, event_type.as_uri());
        assert_eq!(row.upstream_id.as_deref(), Some(upstream.id.as_str()));
        // Nothing registered a session: only record-style rules leave a trace.
        assert!(
            matches!(row.outcome.as_str(), "applied" | "no_action"),
            "{}",
            row.outcome
        );
    }

    // And the transmitter let go of every SET: pushed ones were accepted, polled ones acked.
    let stream_id = upstream.remote_stream_id.as_deref().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !transmitter
        .store()
        .pending_sets(stream_id, 1)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "SETs still wait at the transmitter"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(transmitter
        .store()
        .outbox_entries(stream_id, "rejected", 10)
        .await
        .unwrap()
        .is_empty());
    assert!(transmitter
        .store()
        .outbox_entries(stream_id, "dead", 10)
        .await
        .unwrap()
        .is_empty());
}
