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
            return Err(ConfigError("server.issuer: must be an https URL".to_owned()));
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
            return Err(ConfigError("database.max_connections must be positive".to_owned()));
        }
        if !["RS256", "ES256", "PS256", "EdDSA"].contains(&self.signing.algorithm.as_str()) {
            return Err(ConfigError(format!(
                "signing.algorithm: `{}` is not RS256, ES256, PS256 or EdDSA",
                self.signing.algorithm
            )));
        }
        if self.signing.rotation_overlap_secs < 0 {
            return Err(ConfigError("signing.rotation_overlap_secs must not be negative".to_owned()));
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
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
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
        let file = write("[server]\nbind = \"127.0.0.1:9000\"\nissuer = \"https://ssf.example.com\"\n");
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
        let err = Config::load(Some(file.path()), env(&[])).unwrap_err().to_string();
        assert!(err.contains("bindd"), "{err}");
        let file = write("[servers]\n");
        let err = Config::load(Some(file.path()), env(&[])).unwrap_err().to_string();
        assert!(err.contains("servers"), "{err}");
        let err = Config::load(None, env(&[("SSFD_SERVER__PORTT", "1")])).unwrap_err().to_string();
        assert!(err.contains("portt"), "{err}");
        let err = Config::load(None, env(&[("SSFD_NOPE__X", "1")])).unwrap_err().to_string();
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
