//! ssfd: an OpenID Shared Signals Framework 1.0 server.
//!
//! One library, one binary. The binary (`src/main.rs`) only parses the command line and calls
//! [`cli::run`]; everything else lives here so that tests can start real servers in-process.

/// Who is calling: receiver bearer tokens, the OAuth token endpoint, publishers.
pub mod auth;
/// Command-line interface: `serve`, `migrate`, `config`, `keys`, `healthcheck`.
pub mod cli;
/// Injectable time source: every "now" in ssfd comes from a [`clock::Clock`].
pub mod clock;
/// Typed, validated configuration: defaults, then `ssfd.toml`, then `SSFD_*` variables.
pub mod config;
/// HTTP composition: application state, router, error type, serving.
pub mod http;
/// Random identifiers and secrets, generated in one place.
pub mod ids;
/// Signing keys, JWKS, SET signing and verification (josekit).
pub mod jose;
/// Counters and histograms for `GET /metrics` (Prometheus text format).
pub mod metrics;
/// Pure wire types of SSF 1.0, CAEP 1.0, RISC 1.0, RFC 8417, RFC 8935, RFC 8936 and RFC 9493.
pub mod protocol;
/// The receiver role: push endpoint per upstream, SET validation, storage.
pub mod receiver;
/// Session enforcement: local sessions, policy, decisions, audit, webhooks.
pub mod sessions;
/// Persistence: one `Store` trait, SQLite and PostgreSQL implementations.
pub mod storage;
/// The transmitter role: metadata, stream management, fan-out, outbox, push and poll.
pub mod transmitter;
