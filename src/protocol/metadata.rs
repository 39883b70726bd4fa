//! Transmitter configuration metadata (SSF 1.0 §7.1) and its discovery URL (§7.2).

use serde::{Deserialize, Serialize};

use super::{DeliveryMethod, Extra};

/// One entry of `authorization_schemes` (SSF 1.0 §7.1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationScheme {
    /// The URN of the specification, e.g. `urn:ietf:rfc:6749` for OAuth 2.0.
    pub spec_urn: String,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}

closed_enum! {
    /// `default_subjects` (SSF 1.0 §7.1): "MUST be one of" these when present.
    pub enum DefaultSubjects {
        /// Appropriate subjects are in every stream until removed.
        All => "ALL",
        /// Only subjects added by the receiver are in a stream.
        None => "NONE",
    }
}

/// The document at `/.well-known/ssf-configuration` (SSF 1.0 §7.1). Lists with no element are
/// omitted, as §7.2.3 requires ("claims with zero elements MUST be omitted").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransmitterMetadata {
    /// `1_0` for SSF 1.0 Final; absent means `1_0-ID1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<String>,
    /// The issuer, identical to the `iss` of every SET (SSF-MD-02).
    pub issuer: String,
    /// The JWKS holding the signing keys (SSF-MD-03).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Supported delivery methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery_methods_supported: Vec<DeliveryMethod>,
    /// Stream configuration endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_endpoint: Option<String>,
    /// Stream status endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_endpoint: Option<String>,
    /// Add-subject endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_subject_endpoint: Option<String>,
    /// Remove-subject endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_subject_endpoint: Option<String>,
    /// Verification endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_endpoint: Option<String>,
    /// Complex-subject members a receiver MUST understand (SSF-SUB-17).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critical_subject_members: Vec<String>,
    /// How receivers authorize to the management API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_schemes: Vec<AuthorizationScheme>,
    /// Whether subjects are in streams by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_subjects: Option<DefaultSubjects>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The name of the well-known document (SSF 1.0 §7.2).
pub const WELL_KNOWN_SEGMENT: &str = "/.well-known/ssf-configuration";

/// The URL of the metadata of `issuer`: `/.well-known/ssf-configuration` is inserted between
/// the host and the path, after removing a terminating `/` from the path (SSF-DISC-02/04).
pub fn discovery_url(issuer: &url::Url) -> url::Url {
    let path = issuer.path().trim_end_matches('/');
    let mut url = issuer.clone();
    url.set_path(&format!("{WELL_KNOWN_SEGMENT}{path}"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// The path under which a server whose issuer is `issuer` serves its metadata.
pub fn discovery_path(issuer: &url::Url) -> String {
    discovery_url(issuer).path().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_insertion_vectors() {
        // SSF-DISC-02, SSF-DISC-04: the vectors of spec-checklist §1.7.
        let cases = [
            (
                "https://tr.example.com",
                "https://tr.example.com/.well-known/ssf-configuration",
            ),
            (
                "https://tr.example.com/",
                "https://tr.example.com/.well-known/ssf-configuration",
            ),
            (
                "https://tr.example.com/issuer1",
                "https://tr.example.com/.well-known/ssf-configuration/issuer1",
            ),
            (
                "https://tr.example.com/issuer1/",
                "https://tr.example.com/.well-known/ssf-configuration/issuer1",
            ),
            (
                "https://acme.test/my/path",
                "https://acme.test/.well-known/ssf-configuration/my/path",
            ),
            (
                "https://tr.example.com:8443/t/a",
                "https://tr.example.com:8443/.well-known/ssf-configuration/t/a",
            ),
        ];
        for (issuer, expected) in cases {
            let issuer = url::Url::parse(issuer).unwrap();
            assert_eq!(discovery_url(&issuer).as_str(), expected);
        }
    }

    #[test]
    fn empty_lists_are_omitted() {
        // SSF-MD-10
        let metadata = TransmitterMetadata {
            spec_version: Some("1_0".into()),
            issuer: "https://tr.example.com".into(),
            jwks_uri: None,
            delivery_methods_supported: vec![],
            configuration_endpoint: None,
            status_endpoint: None,
            add_subject_endpoint: None,
            remove_subject_endpoint: None,
            verification_endpoint: None,
            critical_subject_members: vec![],
            authorization_schemes: vec![],
            default_subjects: None,
            extra: Extra::new(),
        };
        let json = serde_json::to_value(&metadata).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"spec_version": "1_0", "issuer": "https://tr.example.com"})
        );
    }
}
