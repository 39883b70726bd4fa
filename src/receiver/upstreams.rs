//! Registering an upstream transmitter (SSF 1.0 §7.2, §8.1.1.1, §8.1.4): discover its
//! metadata, check it, get a token, pin its keys, create a stream that pushes to ssfd, check
//! the stream's `iss` and `aud`, and request a verification event.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::PUSH_PREFIX;
use crate::auth::hash_secret;
use crate::http::AppState;
use crate::protocol::metadata::discovery_url;
use crate::protocol::{
    Audience, DeliveryMethod, EventType, StreamConfiguration, TransmitterMetadata,
};
use crate::storage::UpstreamRow;

/// How ssfd obtains a bearer token from the upstream (stored with the upstream; secret).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UpstreamAuth {
    /// OAuth 2.0 client credentials at a token endpoint (RFC 6749 §4.4).
    ClientCredentials {
        /// The token endpoint; discovered from the metadata's `token_endpoint` when absent.
        token_endpoint: Option<String>,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: String,
        /// Scope to ask for.
        scope: Option<String>,
    },
    /// A static bearer token.
    Static {
        /// The token.
        token: String,
    },
}

impl std::fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientCredentials { client_id, .. } => {
                write!(
                    f,
                    "ClientCredentials {{ client_id: {client_id:?}, secret: <redacted> }}"
                )
            }
            Self::Static { .. } => f.write_str("Static { token: <redacted> }"),
        }
    }
}

/// What an admin gives to register an upstream.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The transmitter's issuer, exactly as it publishes it.
    pub issuer: String,
    /// How to authenticate.
    pub auth: UpstreamAuth,
    /// Event types wanted.
    pub events: Vec<EventType>,
}

/// Why a registration failed: the step and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {reason}")]
pub struct RegistrationError {
    /// What was being done.
    pub step: &'static str,
    /// What went wrong.
    pub reason: String,
}

fn failed(step: &'static str) -> impl Fn(String) -> RegistrationError {
    move |reason| RegistrationError { step, reason }
}

async fn get_json(
    state: &AppState,
    url: &str,
    step: &'static str,
) -> Result<Value, RegistrationError> {
    let response = state
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| failed(step)(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(step)(format!(
            "{url} answered {}",
            response.status()
        )));
    }
    response
        .json()
        .await
        .map_err(|e| failed(step)(e.to_string()))
}

/// A bearer token for the upstream.
pub async fn token(
    state: &AppState,
    auth: &UpstreamAuth,
    metadata: &TransmitterMetadata,
) -> Result<String, RegistrationError> {
    Ok(token_with_lifetime(state, auth, metadata).await?.0)
}

/// A bearer token for the upstream and its lifetime in seconds, when the token endpoint gave
/// one (`expires_in`, RFC 6749 §5.1).
pub async fn token_with_lifetime(
    state: &AppState,
    auth: &UpstreamAuth,
    metadata: &TransmitterMetadata,
) -> Result<(String, Option<i64>), RegistrationError> {
    let step = "obtaining an access token";
    match auth {
        UpstreamAuth::Static { token } => Ok((token.clone(), None)),
        UpstreamAuth::ClientCredentials {
            token_endpoint,
            client_id,
            client_secret,
            scope,
        } => {
            let endpoint = token_endpoint
                .clone()
                .or_else(|| {
                    metadata
                        .extra
                        .get("token_endpoint")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .ok_or_else(|| {
                    failed(step)("no token endpoint configured or advertised".to_owned())
                })?;
            let mut form = vec![("grant_type", "client_credentials".to_owned())];
            if let Some(scope) = scope {
                form.push(("scope", scope.clone()));
            }
            let response = state
                .http
                .post(&endpoint)
                .basic_auth(client_id, Some(client_secret))
                .form(&form)
                .send()
                .await
                .map_err(|e| failed(step)(e.to_string()))?;
            if !response.status().is_success() {
                return Err(failed(step)(format!(
                    "the token endpoint answered {}",
                    response.status()
                )));
            }
            let body: Value = response
                .json()
                .await
                .map_err(|e| failed(step)(e.to_string()))?;
            let token = body["access_token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| failed(step)("no access_token in the answer".to_owned()))?;
            Ok((token, body["expires_in"].as_i64()))
        }
    }
}

/// Registers an upstream whose SETs are pushed to ssfd; returns its stored row.
pub async fn register_push(
    state: &AppState,
    registration: Registration,
) -> Result<UpstreamRow, RegistrationError> {
    register(state, registration, DeliveryMethod::Push).await
}

/// Registers an upstream that ssfd polls; returns its stored row.
pub async fn register_poll(
    state: &AppState,
    registration: Registration,
) -> Result<UpstreamRow, RegistrationError> {
    register(state, registration, DeliveryMethod::Poll).await
}

async fn register(
    state: &AppState,
    registration: Registration,
    method: DeliveryMethod,
) -> Result<UpstreamRow, RegistrationError> {
    let issuer = url::Url::parse(&registration.issuer)
        .map_err(|e| failed("parsing the issuer")(e.to_string()))?;
    // Discovery (SSF-DISC-02/04), then the checks that make the document usable (SSF-DISC-06/07).
    let step = "discovering the transmitter";
    let document = get_json(state, discovery_url(&issuer).as_str(), step).await?;
    let metadata: TransmitterMetadata =
        serde_json::from_value(document.clone()).map_err(|e| failed(step)(e.to_string()))?;
    if metadata.issuer != registration.issuer {
        return Err(failed(step)(format!(
            "the metadata names issuer {}, not {}",
            metadata.issuer, registration.issuer
        )));
    }
    match metadata.spec_version.as_deref() {
        Some(version) if version.starts_with("1_0") => {}
        other => return Err(failed(step)(format!("unsupported spec_version {other:?}"))),
    }
    if !metadata.delivery_methods_supported.is_empty()
        && !metadata
            .delivery_methods_supported
            .contains(&DeliveryMethod::Push)
    {
        return Err(failed(step)(
            "the transmitter does not offer push delivery".to_owned(),
        ));
    }
    let jwks_uri = metadata
        .jwks_uri
        .clone()
        .ok_or_else(|| failed(step)("no jwks_uri".to_owned()))?;
    let configuration_endpoint = metadata
        .configuration_endpoint
        .clone()
        .ok_or_else(|| failed(step)("no configuration_endpoint".to_owned()))?;
    let jwks = get_json(state, &jwks_uri, "fetching the transmitter's keys").await?;
    let bearer = token(state, &registration.auth, &metadata).await?;

    // The stream: push to a URL of this upstream's own, with a secret only it knows.
    let id = crate::ids::new_id();
    let push_secret = crate::ids::new_secret();
    let created = create_stream(
        state,
        &configuration_endpoint,
        &bearer,
        &registration.issuer,
        &id,
        method.clone(),
        &registration.events,
        &push_secret,
    )
    .await?;
    let (stream, audience) = (created.stream, created.audience);
    let step = "creating the stream";
    let now = state.clock.now();
    let verification_state = crate::ids::new_id();
    let row = UpstreamRow {
        id,
        issuer: registration.issuer.clone(),
        metadata: Some(document.to_string()),
        auth: serde_json::to_string(&registration.auth).expect("serialises"),
        delivery_method: method.as_str().to_owned(),
        events_requested: serde_json::to_string(&registration.events).expect("serialises"),
        remote_stream_id: Some(stream.stream_id.clone()),
        poll_url: match method {
            DeliveryMethod::Poll => {
                Some(stream.delivery.endpoint_url.clone().ok_or_else(|| {
                    failed(step)("the poll stream has no endpoint_url".to_owned())
                })?)
            }
            _ => None,
        },
        audience,
        jwks: Some(jwks.to_string()),
        push_token_hash: (method == DeliveryMethod::Push).then(|| hash_secret(&push_secret)),
        status: "enabled".to_owned(),
        verification_state: Some(verification_state.clone()),
        verified_at: None,
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .insert_upstream(&row)
        .await
        .map_err(|e| failed("storing the upstream")(e.to_string()))?;

    // Ask for a verification event; it arrives (pushed or polled) and its state is checked.
    if let Some(verification_endpoint) = &metadata.verification_endpoint {
        let answer = state
            .http
            .post(verification_endpoint)
            .bearer_auth(&bearer)
            .json(&json!({"stream_id": stream.stream_id, "state": verification_state}))
            .send()
            .await
            .map_err(|e| failed("requesting verification")(e.to_string()))?;
        if !answer.status().is_success() {
            tracing::warn!(status = %answer.status(), "the transmitter refused a verification request");
        }
    }
    Ok(row)
}

/// A stream created at a transmitter, with the audience ssfd will check.
pub struct CreatedStream {
    /// The transmitter's answer.
    pub stream: StreamConfiguration,
    /// The audience of its SETs.
    pub audience: String,
}

/// Creates the stream of upstream `id` at `configuration_endpoint`: pushed to ssfd's URL for
/// this upstream with `push_secret`, or polled. Refuses a stream with a foreign `iss`
/// (SSF-CR-02).
#[allow(clippy::too_many_arguments)]
pub async fn create_stream(
    state: &AppState,
    configuration_endpoint: &str,
    bearer: &str,
    issuer: &str,
    id: &str,
    method: DeliveryMethod,
    events: &[EventType],
    push_secret: &str,
) -> Result<CreatedStream, RegistrationError> {
    let push_url = state.endpoints.url(&format!("{PUSH_PREFIX}{id}"));
    let step = "creating the stream";
    let delivery = match method {
        DeliveryMethod::Push => json!({"method": method, "endpoint_url": push_url,
                                       "authorization_header": format!("Bearer {push_secret}")}),
        _ => json!({"method": method}),
    };
    let body = json!({
        "events_requested": events,
        "delivery": delivery,
        "description": format!("ssfd receiver at {}", state.config.server.issuer),
    });
    let response = state
        .http
        .post(configuration_endpoint)
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .map_err(|e| failed(step)(e.to_string()))?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(failed(step)(format!(
            "{status}: {}",
            text.chars().take(300).collect::<String>()
        )));
    }
    let stream: StreamConfiguration = response
        .json()
        .await
        .map_err(|e| failed(step)(e.to_string()))?;
    if stream.iss != issuer {
        return Err(failed(step)(format!(
            "the stream's iss is {}, not {issuer}",
            stream.iss
        )));
    }
    let audience = match &stream.aud {
        Audience::One(aud) => aud.clone(),
        Audience::Many(auds) => auds
            .first()
            .cloned()
            .ok_or_else(|| failed(step)("the stream has an empty aud".to_owned()))?,
    };
    Ok(CreatedStream { stream, audience })
}
