//! Bearer tokens from each source the transmitter accepts: its own token endpoint, an
//! external authorization server, and static tokens; and what each may do.

use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};
use ssfd::auth::{self, CredentialKind};
use ssfd::config::ExternalAuthConfig;
use ssfd::jose::{self, Algorithm, KeyRing};

use crate::common::TestServer;

/// An external authorization server: its JWKS served on 127.0.0.1, tokens minted here.
struct ExternalAs {
    issuer: String,
    jwks_uri: String,
    ring: KeyRing,
}

impl ExternalAs {
    async fn start() -> Self {
        let key = jose::generate(&Algorithm::Es256, None, 0).unwrap();
        let ring = KeyRing::new(vec![key], 1).unwrap();
        let jwks = ring.jwks().clone();
        let app = axum::Router::new().route("/jwks", get(move || async move { Json(jwks) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            issuer: "https://as.example.test".to_owned(),
            jwks_uri: format!("http://{address}/jwks"),
            ring,
        }
    }

    fn token(&self, audience: &str, client_id: &str, scope: &str, exp: i64) -> String {
        let claims = json!({"iss": self.issuer, "aud": audience, "client_id": client_id,
            "scope": scope, "exp": exp, "iat": exp - 300, "jti": ssfd::ids::new_id()});
        self.ring.signer().sign_access_token(&claims).unwrap()
    }
}

async fn read_streams(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .http
        .get(server.url("/ssf/stream"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn external_authorization_server_tokens_are_accepted_when_valid() {
    let external = ExternalAs::start().await;
    let (issuer, jwks_uri) = (external.issuer.clone(), external.jwks_uri.clone());
    let server = TestServer::start_with(move |config| {
        config.auth.external = Some(ExternalAuthConfig {
            issuer,
            jwks_uri,
            audience: "https://ssfd.example.test".to_owned(),
        });
    })
    .await;
    let now = server.state.clock.now();
    let good = external.token("https://ssfd.example.test", "rp-1", "ssf.manage", now + 300);
    let response = read_streams(&server, &good).await;
    assert_eq!(
        response.status(),
        200,
        "{:?}",
        response.headers().get("www-authenticate")
    );
    let created = server
        .http
        .post(server.url("/ssf/stream"))
        .bearer_auth(&good)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // Wrong audience, expired (beyond the 60 s leeway), read-only trying to write: refused
    // (IOP-RS-03, IOP-RS-04).
    let wrong_audience = external.token(
        "https://other.example.test",
        "rp-1",
        "ssf.manage",
        now + 300,
    );
    assert_eq!(read_streams(&server, &wrong_audience).await.status(), 401);
    let expired = external.token("https://ssfd.example.test", "rp-1", "ssf.manage", now - 120);
    let response = read_streams(&server, &expired).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let read_only = external.token("https://ssfd.example.test", "rp-1", "ssf.read", now + 300);
    let refused = server
        .http
        .post(server.url("/ssf/stream"))
        .bearer_auth(&read_only)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));

    // A token signed by a key the authorization server does not publish.
    let impostor = ExternalAs::start().await;
    let forged = impostor.token("https://ssfd.example.test", "rp-1", "ssf.manage", now + 300);
    assert_eq!(read_streams(&server, &forged).await.status(), 401);
}

#[tokio::test]
async fn static_tokens_and_revocation() {
    let server = TestServer::start().await;
    let now = server.state.clock.now();
    let store = server.store().as_ref();
    let (client, secret) = auth::register_client(store, "rp", &["ssf.manage"], now)
        .await
        .unwrap();
    let (_, static_token) = auth::create_credential(
        store,
        CredentialKind::Receiver,
        "rp",
        &["ssf.read"],
        Some(&client.client_id),
        now,
    )
    .await
    .unwrap();
    assert_eq!(read_streams(&server, &static_token).await.status(), 200);
    let write = server
        .http
        .post(server.url("/ssf/stream"))
        .bearer_auth(&static_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        write.status(),
        403,
        "a read-only static token cannot create"
    );

    let access = server.token_for(&client.client_id, &secret).await;
    assert_eq!(read_streams(&server, &access).await.status(), 200);
    store.revoke_client(&client.client_id, now).await.unwrap();
    assert_eq!(
        read_streams(&server, &static_token).await.status(),
        401,
        "revoked with its client"
    );
    assert_eq!(
        read_streams(&server, &access).await.status(),
        401,
        "issued tokens die with the client"
    );

    // Publisher credentials are not receiver tokens, and the reverse.
    let publisher = server.publisher().await;
    assert_eq!(read_streams(&server, &publisher).await.status(), 401);
}

#[tokio::test]
async fn token_endpoint_follows_rfc_6749() {
    let server = TestServer::start().await;
    let (client_id, secret) = server.client(&["ssf.manage"]).await;
    let post = |form: Vec<(&'static str, String)>| {
        let request = server.http.post(server.url("/oauth/token")).form(&form);
        async move { request.send().await.unwrap() }
    };
    // client_secret_post, with a narrower scope.
    let response = post(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", client_id.clone()),
        ("client_secret", secret.clone()),
        ("scope", "ssf.read".into()),
    ])
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "ssf.read");
    assert!(body["expires_in"].as_i64().unwrap() <= 3600, "short-lived");
    let token = body["access_token"].as_str().unwrap();
    let write = server
        .http
        .post(server.url("/ssf/stream"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);

    // Wrong secret, unknown grant, a scope the client does not have.
    let wrong = post(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", client_id.clone()),
        ("client_secret", "nope".into()),
    ])
    .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let grant = server
        .http
        .post(server.url("/oauth/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        grant.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let scope = server
        .http
        .post(server.url("/oauth/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        scope.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );

    // The authorization server metadata advertises the endpoint (RFC 8414).
    let metadata: Value = server
        .http
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["token_endpoint"], server.url("/oauth/token"));
}
