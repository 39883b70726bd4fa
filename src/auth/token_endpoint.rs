//! The OAuth 2.0 token endpoint: the client credentials grant (RFC 6749 §4.4) with
//! `client_secret_basic` and `client_secret_post` client authentication (§2.3.1).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::{secret_matches, split_scopes, SCOPE_MANAGE, SCOPE_READ};
use crate::http::{AppState, Endpoints};

/// Path of the token endpoint under the issuer.
pub const TOKEN_PATH: &str = "/oauth/token";

/// The token endpoint's routes.
pub fn router(endpoints: &Endpoints) -> Router<AppState> {
    Router::new().route(&endpoints.path(TOKEN_PATH), post(token))
}

#[derive(Debug, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// An RFC 6749 §5.2 error response.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
    basic_challenge: bool,
}

impl OAuthError {
    fn new(error: &'static str, description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description,
            basic_challenge: false,
        }
    }

    fn invalid_client(basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "client authentication failed",
            basic_challenge: basic,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.error, "error_description": self.description}));
        let mut response =
            (self.status, [(header::CACHE_CONTROL, "no-store")], body).into_response();
        if self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"ssfd\""),
            );
        }
        response
    }
}

/// `client_id:client_secret` from a Basic header, each form-urlencoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), OAuthError>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let pair = decoded
        .as_deref()
        .and_then(|text| text.split_once(':'))
        .map(|(id, secret)| {
            let unescape = |part: &str| {
                url::form_urlencoded::parse(format!("v={part}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (unescape(id), unescape(secret))
        });
    Some(pair.ok_or_else(|| OAuthError::invalid_client(true)))
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(request): Form<TokenRequest>,
) -> Result<Response, OAuthError> {
    let basic = basic_credentials(&headers).transpose()?;
    let via_basic = basic.is_some();
    let (client_id, secret) = match (basic, request.client_id, request.client_secret) {
        (Some(_), Some(_), Some(_)) => {
            return Err(OAuthError::new(
                "invalid_request",
                "use one client authentication method, not two",
            ))
        }
        (Some(pair), _, None) => pair,
        (None, Some(id), Some(secret)) => (id, secret),
        _ => return Err(OAuthError::invalid_client(false)),
    };
    match request.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "only client_credentials is supported",
            ))
        }
        None => return Err(OAuthError::new("invalid_request", "grant_type is required")),
    }
    let client = state
        .store
        .get_client(&client_id)
        .await
        .ok()
        .filter(|c| c.revoked_at.is_none() && secret_matches(&secret, &c.secret_hash))
        .ok_or_else(|| OAuthError::invalid_client(via_basic))?;
    let allowed = split_scopes(&client.scopes);
    let granted: Vec<String> = match request.scope.as_deref().map(split_scopes) {
        None => allowed,
        Some(requested) if requested.is_empty() => allowed,
        Some(requested) => {
            // ssf.manage implies ssf.read (IOP-SC-02: read operations accept either).
            let permitted = |scope: &String| {
                allowed.contains(scope)
                    || (scope == SCOPE_READ && allowed.iter().any(|s| s == SCOPE_MANAGE))
            };
            if !requested.iter().all(permitted) {
                return Err(OAuthError::new(
                    "invalid_scope",
                    "a requested scope is not allowed for this client",
                ));
            }
            requested
        }
    };
    let access_token = state
        .auth
        .issue_access_token(&client.client_id, &granted)
        .await
        .map_err(|_| OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "cannot issue a token",
            basic_challenge: false,
        })?;
    let body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.auth.token_lifetime(),
        "scope": granted.join(" "),
    });
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response())
}
