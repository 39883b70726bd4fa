//! Typed, validated configuration. Layers: [`Config::default`], then a TOML file, then
//! `SSFD_<SECTION>__<KEY>` environment variables. `config/ssfd.example.toml` documents every
//! option with its default; a test keeps the two equal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The documented default configuration, as shipped.
pub const EXAMPLE: &str = include_str!("../config/ssfd.example.toml");

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SSFD_";

/// The file read when neither `--config` nor `SSFD_CONFIG` names one, if it exists.
pub const DEFAULT_FILE: &str = "config/ssfd.toml";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listener and issuer.
    pub server: ServerConfig,
    /// Persistence.
    pub database: DatabaseConfig,
    /// SET signing keys.
    pub signing: SigningConfig,
    /// The transmitter role.
    pub transmitter: TransmitterConfig,
    /// Receiver authorization to the management API.
    pub auth: AuthConfig,
    /// The receiver role: validation and upstream stream health.
    pub receiver: ReceiverConfig,
    /// Session enforcement: policy, decisions, webhooks.
    pub sessions: SessionsConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// Issuer identifier; every advertised URL derives from it.
    pub issuer: String,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Longest request, seconds.
    pub request_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: "http://127.0.0.1:8080".to_owned(),
            max_body_bytes: 64 * 1024,
            request_timeout_secs: 30,
        }
    }
}

/// `[database]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite:PATH` or `postgres://...`. May hold a password: never logged.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite:data/ssfd.db".to_owned(),
            max_connections: 8,
        }
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// A database URL with any password replaced, for logs and `config print`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `[signing]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// Algorithm of new keys.
    pub algorithm: String,
    /// Seconds the previous key stays published after a rotation.
    pub rotation_overlap_secs: i64,
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self {
            algorithm: "RS256".to_owned(),
            rotation_overlap_secs: 86_400,
        }
    }
}

/// `[transmitter]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransmitterConfig {
    /// Event-type URIs offered, or the shorthands `caep` and `risc`.
    pub events_supported: Vec<String>,
    /// `ALL` or `NONE`.
    pub default_subjects: crate::protocol::metadata::DefaultSubjects,
    /// One stream per receiver client (409 on a second create).
    pub single_stream_per_client: bool,
    /// Seconds between verification requests.
    pub min_verification_interval_secs: u64,
    /// Longest long poll, seconds.
    pub poll_max_wait_secs: u64,
    /// Push targets exempt from the https and public-address rules.
    pub push_allowed_hosts: Vec<String>,
    /// Timeout of one push, seconds.
    pub push_timeout_secs: u64,
    /// Concurrent pushes per stream.
    pub push_concurrency_per_stream: usize,
    /// First retry delay, seconds.
    pub retry_initial_secs: u64,
    /// Largest retry delay, seconds.
    pub retry_max_secs: u64,
    /// Age at which an undelivered SET is dead-lettered, seconds.
    pub dead_letter_after_secs: i64,
}

impl Default for TransmitterConfig {
    fn default() -> Self {
        Self {
            events_supported: vec!["caep".to_owned(), "risc".to_owned()],
            default_subjects: crate::protocol::metadata::DefaultSubjects::All,
            single_stream_per_client: false,
            min_verification_interval_secs: 1,
            poll_max_wait_secs: 30,
            push_allowed_hosts: Vec::new(),
            push_timeout_secs: 10,
            push_concurrency_per_stream: 1,
            retry_initial_secs: 1,
            retry_max_secs: 300,
            dead_letter_after_secs: 86_400,
        }
    }
}

impl TransmitterConfig {
    /// The configured event types, shorthands expanded, in a stable order.
    pub fn supported_event_types(&self) -> Vec<crate::protocol::EventType> {
        use crate::protocol::EventType;
        let mut types = Vec::new();
        for entry in &self.events_supported {
            let expanded: Vec<EventType> = match entry.as_str() {
                "caep" => EventType::KNOWN
                    .iter()
                    .filter(|t| t.is_caep())
                    .cloned()
                    .collect(),
                "risc" => EventType::KNOWN
                    .iter()
                    .filter(|t| t.is_risc())
                    .cloned()
                    .collect(),
                uri => vec![EventType::from(uri)],
            };
            for event_type in expanded {
                if !types.contains(&event_type) {
                    types.push(event_type);
                }
            }
        }
        types
    }

    /// The push exemption list, parsed (validated at load).
    pub fn allowed_hosts(&self) -> Vec<crate::transmitter::push_target::AllowedHost> {
        self.push_allowed_hosts
            .iter()
            .filter_map(|entry| entry.parse().ok())
            .collect()
    }
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of issued access tokens, seconds.
    pub access_token_lifetime_secs: i64,
    /// An external authorization server whose JWT access tokens are accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalAuthConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_lifetime_secs: 300,
            external: None,
        }
    }
}

/// `[auth.external]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalAuthConfig {
    /// Required `iss` of its tokens.
    pub issuer: String,
    /// Where its signing keys are.
    pub jwks_uri: String,
    /// Required `aud` of its tokens.
    pub audience: String,
}

/// `[receiver]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiverConfig {
    /// SETs whose `iat` is older than this are refused, seconds.
    pub max_set_age_secs: i64,
    /// How long a received (iss, jti) is remembered to refuse replays, seconds; at least
    /// `max_set_age_secs`, so that a SET forgotten is also too old to be accepted again.
    pub replay_window_secs: i64,
    /// How often each upstream stream is checked (and re-created if the transmitter lost it).
    pub health_check_secs: u64,
    /// How often each upstream stream is verified again, seconds.
    pub reverify_interval_secs: i64,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            max_set_age_secs: 7 * 86400,
            replay_window_secs: 30 * 86400,
            health_check_secs: 300,
            reverify_interval_secs: 86400,
        }
    }
}

/// `[sessions]`. Its `Debug` hides the webhook secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// The policy file; empty for the built-in default (config/policy.example.toml).
    pub policy_file: String,
    /// How often the policy file is checked for changes, seconds (0: never; SIGHUP still works).
    pub policy_reload_secs: u64,
    /// Privilege levels from lowest to highest.
    pub privilege_levels: Vec<String>,
    /// Longest just-in-time elevation, seconds.
    pub max_elevation_secs: i64,
    /// For `sensitivity: high` decisions, the oldest acceptable authentication, seconds.
    pub sensitive_max_auth_age_secs: i64,
    /// Where action notifications are POSTed; empty: none.
    pub webhook_url: String,
    /// The HMAC-SHA256 key of the `ssfd-signature` header; required with `webhook_url`.
    pub webhook_secret: String,
    /// Hosts exempt from the https and public-address rules for `webhook_url`.
    pub webhook_allowed_hosts: Vec<String>,
    /// Age at which an undelivered notification is given up, seconds.
    pub webhook_give_up_after_secs: i64,
}

impl std::fmt::Debug for SessionsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionsConfig")
            .field("policy_file", &self.policy_file)
            .field("privilege_levels", &self.privilege_levels)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            policy_file: String::new(),
            policy_reload_secs: 5,
            privilege_levels: vec![
                "read-only".to_owned(),
                "user".to_owned(),
                "admin".to_owned(),
            ],
            max_elevation_secs: 3600,
            sensitive_max_auth_age_secs: 900,
            webhook_url: String::new(),
            webhook_secret: String::new(),
            webhook_allowed_hosts: Vec::new(),
            webhook_give_up_after_secs: 86400,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// EnvFilter directive.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration that cannot be used, with a message naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads the configuration: defaults, then `file` (or `config/ssfd.toml` when `file` is
    /// `None` and that file exists), then the `SSFD_*__*` variables of `env`; then validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError(format!("internal: defaults do not serialise: {e}")))?;
        let file = file.map(Path::to_path_buf).or_else(|| {
            let default = PathBuf::from(DEFAULT_FILE);
            default.exists().then_some(default)
        });
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
            let overlay: toml::Table = text
                .parse()
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            merge(&mut table, overlay);
        }
        for (name, value) in env {
            let Some(path) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // Only SECTION__KEY names are configuration; SSFD_CONFIG and the like are not.
            if !path.contains("__") {
                continue;
            }
            set_path(&mut table, &name, path, &value)?;
        }
        let config: Config = toml::Value::Table(table).try_into().map_err(|e| {
            let source = file
                .as_ref()
                .map(|p| format!(" (in {} or SSFD_* variables)", p.display()))
                .unwrap_or_else(|| " (in SSFD_* variables)".to_owned());
            ConfigError(format!("invalid configuration{source}: {e}"))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates one TOML document over the defaults, ignoring the environment:
    /// what `ssfd config check FILE` does.
    pub fn check_file(path: &Path) -> Result<Self, ConfigError> {
        Self::load(Some(path), std::iter::empty())
    }

    /// Checks the values serde cannot: URLs, algorithms, ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let issuer = url::Url::parse(&self.server.issuer)
            .map_err(|e| ConfigError(format!("server.issuer: {e}")))?;
        if !matches!(issuer.scheme(), "https" | "http") {
            return Err(ConfigError(
                "server.issuer: must be an https URL".to_owned(),
            ));
        }
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(ConfigError(
                "server.issuer: must not have a query or fragment (SSF 1.0 §7.1)".to_owned(),
            ));
        }
        if self.server.max_body_bytes == 0 || self.server.request_timeout_secs == 0 {
            return Err(ConfigError(
                "server.max_body_bytes and server.request_timeout_secs must be positive".to_owned(),
            ));
        }
        let scheme = self.database.url.split(':').next().unwrap_or_default();
        if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
            return Err(ConfigError(format!(
                "database.url: scheme `{scheme}` is not sqlite, postgres or postgresql"
            )));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections must be positive".to_owned(),
            ));
        }
        let algorithm = crate::jose::Algorithm::from(self.signing.algorithm.as_str());
        if !crate::jose::Algorithm::ASYMMETRIC.contains(&algorithm) {
            return Err(ConfigError(format!(
                "signing.algorithm: `{}` is not RS256, ES256, PS256 or EdDSA",
                self.signing.algorithm
            )));
        }
        if self.signing.rotation_overlap_secs < 0 {
            return Err(ConfigError(
                "signing.rotation_overlap_secs must not be negative".to_owned(),
            ));
        }
        let receiver = &self.receiver;
        if receiver.max_set_age_secs <= 0 || receiver.replay_window_secs < receiver.max_set_age_secs
        {
            return Err(ConfigError(
                "receiver.max_set_age_secs must be positive and receiver.replay_window_secs at least as long".to_owned(),
            ));
        }
        if receiver.health_check_secs == 0 || receiver.reverify_interval_secs <= 0 {
            return Err(ConfigError(
                "receiver.health_check_secs and receiver.reverify_interval_secs must be positive"
                    .to_owned(),
            ));
        }
        let sessions = &self.sessions;
        if sessions.privilege_levels.is_empty() || sessions.max_elevation_secs <= 0 {
            return Err(ConfigError(
                "sessions.privilege_levels must not be empty and sessions.max_elevation_secs must be positive".to_owned(),
            ));
        }
        if !sessions.webhook_url.is_empty() {
            url::Url::parse(&sessions.webhook_url)
                .map_err(|e| ConfigError(format!("sessions.webhook_url: {e}")))?;
            if sessions.webhook_secret.len() < 16 {
                return Err(ConfigError(
                    "sessions.webhook_secret: at least 16 characters are required with a webhook_url".to_owned(),
                ));
            }
        }
        for entry in &sessions.webhook_allowed_hosts {
            entry
                .parse::<crate::transmitter::push_target::AllowedHost>()
                .map_err(|e| ConfigError(format!("sessions.webhook_allowed_hosts: {e}")))?;
        }
        for entry in &self.transmitter.push_allowed_hosts {
            entry
                .parse::<crate::transmitter::push_target::AllowedHost>()
                .map_err(|e| ConfigError(format!("transmitter.push_allowed_hosts: {e}")))?;
        }
        for entry in &self.transmitter.events_supported {
            if entry != "caep" && entry != "risc" && url::Url::parse(entry).is_err() {
                return Err(ConfigError(format!(
                    "transmitter.events_supported: `{entry}` is neither a URI nor caep or risc"
                )));
            }
        }
        if self.transmitter.push_concurrency_per_stream == 0
            || self.transmitter.push_timeout_secs == 0
        {
            return Err(ConfigError(
                "transmitter.push_concurrency_per_stream and push_timeout_secs must be positive"
                    .to_owned(),
            ));
        }
        if self.auth.access_token_lifetime_secs <= 0 {
            return Err(ConfigError(
                "auth.access_token_lifetime_secs must be positive".to_owned(),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError(format!("log.level: {e}")))?;
        Ok(())
    }

    /// The issuer as a parsed URL (validated at load).
    pub fn issuer_url(&self) -> url::Url {
        url::Url::parse(&self.server.issuer).expect("issuer validated at load")
    }
}

/// Overlays `overlay` onto `base`, table by table.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(overlay)) => merge(base, overlay),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Sets `SECTION__KEY` (lower-cased) from an environment variable. Values are read as TOML
/// scalars (numbers, booleans) unless the key already holds a string.
fn set_path(
    table: &mut toml::Table,
    variable: &str,
    path: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let segments: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    let (last, sections) = segments.split_last().expect("split yields one segment");
    let mut current = table;
    for section in sections {
        current = match current.get_mut(section) {
            Some(toml::Value::Table(inner)) => inner,
            _ => {
                return Err(ConfigError(format!(
                    "{variable}: unknown configuration section `{section}`"
                )))
            }
        };
    }
    let value = match current.get(last) {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_owned()),
        _ => format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
    };
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn example_file_documents_exactly_the_defaults() {
        let example: Config = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(example, Config::default());
        // Every key of the defaults appears in the example (and serde rejects any extra one).
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        let documented: toml::Table = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(defaults, documented);
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let file =
            write("[server]\nbind = \"127.0.0.1:9000\"\nissuer = \"https://ssf.example.com\"\n");
        let config = Config::load(
            Some(file.path()),
            env(&[
                ("SSFD_SERVER__BIND", "127.0.0.1:9100"),
                ("SSFD_DATABASE__MAX_CONNECTIONS", "3"),
                ("SSFD_LOG__LEVEL", "debug"),
                ("SSFD_CONFIG", "ignored: not a SECTION__KEY name"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.bind.port(), 9100);
        assert_eq!(config.server.issuer, "https://ssf.example.com");
        assert_eq!(config.database.max_connections, 3);
        assert_eq!(config.log.level, "debug");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let file = write("[server]\nbindd = \"127.0.0.1:9000\"\n");
        let err = Config::load(Some(file.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bindd"), "{err}");
        let file = write("[servers]\n");
        let err = Config::load(Some(file.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("servers"), "{err}");
        let err = Config::load(None, env(&[("SSFD_SERVER__PORTT", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("portt"), "{err}");
        let err = Config::load(None, env(&[("SSFD_NOPE__X", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SSFD_NOPE__X"), "{err}");
    }

    #[test]
    fn values_are_validated() {
        let bad = [
            ("SSFD_SERVER__ISSUER", "ftp://x"),
            ("SSFD_SERVER__ISSUER", "https://x/?q=1"),
            ("SSFD_DATABASE__URL", "mysql://x"),
            ("SSFD_SIGNING__ALGORITHM", "none"),
            ("SSFD_SIGNING__ALGORITHM", "HS256"),
            ("SSFD_SERVER__BIND", "not-an-address"),
        ];
        for (name, value) in bad {
            let err = Config::load(None, env(&[(name, value)]));
            assert!(err.is_err(), "{name}={value} was accepted");
        }
    }

    #[test]
    fn database_password_is_redacted_in_debug() {
        let mut config = Config::default();
        config.database.url = "postgres://ssfd:hunter2@db/ssfd".to_owned();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
