//! The command line: `ssfd serve | migrate | config | keys | healthcheck`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config, LogFormat};
use crate::jose::{self, Algorithm, KeyRing};
use crate::storage::{self, SharedStore};

/// ssfd: an OpenID Shared Signals Framework 1.0 transmitter and receiver.
#[derive(Debug, Parser)]
#[command(name = "ssfd", version, about)]
pub struct Cli {
    /// Configuration file (default: config/ssfd.toml when it exists).
    #[arg(long, global = true, env = "SSFD_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default configuration needs no setup: SQLite under ./data).
    Serve,
    /// Apply database migrations, then exit.
    Migrate,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage SET signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage receiver clients (OAuth client credentials for the stream management API).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage publisher credentials (for POST /events).
    #[command(subcommand)]
    Publisher(CredentialCommand),
    /// Manage application credentials (for the session API, /sessions).
    #[command(subcommand)]
    Application(CredentialCommand),
    /// Manage admin credentials (for the admin API, /admin, and `ssfd audit`).
    #[command(subcommand, name = "admin-credential")]
    AdminCredential(CredentialCommand),
    /// Read the audit log of a running server (step-ups, denials, revocations…).
    Audit(AuditArgs),
    /// Check a session policy file.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Inspect streams and change their status as the transmitter (announced to the receiver
    /// with a stream-updated event, SSF 1.0 §8.1.5).
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Subscribe to upstream transmitters (the receiver role).
    #[command(subcommand)]
    Upstream(UpstreamCommand),
    /// Submit one event (JSON: {"sub_id": ..., "events": {...}}) from FILE or standard input,
    /// as POST /events does; prints the SETs created.
    Emit {
        /// The event file; `-` or nothing for standard input.
        file: Option<PathBuf>,
    },
    /// Exit 0 when the server at URL answers its health check, 1 otherwise.
    Healthcheck {
        /// Base URL of the server (default: http://<server.bind>).
        #[arg(long)]
        url: Option<String>,
    },
}

/// `ssfd config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file (default: the one ssfd would load) and the environment.
    Check {
        /// The file to check.
        file: Option<PathBuf>,
    },
    /// Print the documented default configuration.
    PrintDefault,
}

/// `ssfd client ...`
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a receiver; prints its client_id and client_secret (shown once).
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// Scopes it may be granted (default: ssf.manage ssf.read).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Also create a static bearer token for it (shown once).
        #[arg(long)]
        static_token: bool,
    },
    /// List receivers.
    List,
    /// Give a receiver a new client secret (shown once); the old one stops working.
    RotateSecret {
        /// The client.
        client_id: String,
    },
    /// Revoke a receiver and its static tokens.
    Revoke {
        /// The client.
        client_id: String,
    },
}

/// `ssfd publisher ...`, `ssfd application ...`, `ssfd admin-credential ...`: static credentials.
#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Create a credential; prints its token (shown once).
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
    },
    /// List the credentials of this kind.
    List,
    /// Revoke a credential.
    Revoke {
        /// The credential id.
        id: String,
    },
}

/// `ssfd audit`
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The server's base URL.
    #[arg(long, env = "SSFD_ADMIN_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An admin credential.
    #[arg(long, env = "SSFD_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Only entries about this subject (an email address, or any text of the subject JSON).
    #[arg(long)]
    pub subject: Option<String>,
    /// Only entries of this session.
    #[arg(long)]
    pub session: Option<String>,
    /// Only entries at or after this time (seconds since the epoch).
    #[arg(long)]
    pub since: Option<i64>,
    /// Only entries before this time (seconds since the epoch).
    #[arg(long)]
    pub until: Option<i64>,
    /// Print JSON Lines (one entry per line, for export) instead of a table.
    #[arg(long)]
    pub jsonl: bool,
}

/// `ssfd policy ...`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse and check a policy file; prints its rules or the first error.
    Check {
        /// The policy file.
        file: std::path::PathBuf,
    },
}

/// `ssfd stream ...`
#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// List every stream with its status, delivery and outbox.
    List,
    /// Set a stream's status and tell its receiver (a stream-updated event).
    SetStatus {
        /// The stream.
        stream_id: String,
        /// enabled, paused or disabled.
        status: String,
        /// Why (sent to the receiver).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Move a stream's dead letters back to the outbox.
    ReplayDead {
        /// The stream.
        stream_id: String,
    },
}

/// `ssfd upstream ...`
#[derive(Debug, Subcommand)]
pub enum UpstreamCommand {
    /// Register a transmitter: discover it, create a stream there, request verification.
    Add {
        /// The transmitter's issuer, exactly as it publishes it.
        #[arg(long)]
        issuer: String,
        /// push (the transmitter POSTs to ssfd) or poll (ssfd fetches).
        #[arg(long, default_value = "push")]
        delivery: String,
        /// Client id for the client credentials grant.
        #[arg(long, requires = "client_secret")]
        client_id: Option<String>,
        /// Client secret (or SSFD_UPSTREAM_CLIENT_SECRET).
        #[arg(long, env = "SSFD_UPSTREAM_CLIENT_SECRET", hide_env_values = true)]
        client_secret: Option<String>,
        /// Token endpoint (default: the one the transmitter advertises).
        #[arg(long)]
        token_endpoint: Option<String>,
        /// A static bearer token instead of client credentials (or SSFD_UPSTREAM_TOKEN).
        #[arg(
            long,
            env = "SSFD_UPSTREAM_TOKEN",
            hide_env_values = true,
            conflicts_with = "client_id"
        )]
        token: Option<String>,
        /// Event types wanted: URIs, or caep / risc for all of one specification (repeatable).
        #[arg(long = "event", default_values = ["caep", "risc"])]
        events: Vec<String>,
    },
    /// List upstreams and their state.
    List,
    /// Delete the upstream's stream at the transmitter and forget the upstream (its stored
    /// SETs stay).
    Remove {
        /// The upstream id.
        id: String,
        /// Only forget it here; leave the stream at the transmitter.
        #[arg(long)]
        local_only: bool,
    },
    /// Ask the transmitter to receive events about a subject (JSON, or an email address).
    AddSubject {
        /// The upstream id.
        id: String,
        /// The subject.
        subject: String,
    },
    /// Ask the transmitter to stop sending events about a subject.
    RemoveSubject {
        /// The upstream id.
        id: String,
        /// The subject.
        subject: String,
    },
    /// Change the event types requested from the transmitter.
    Update {
        /// The upstream id.
        id: String,
        /// Event types: URIs, or caep / risc (repeatable).
        #[arg(long = "event", required = true)]
        events: Vec<String>,
    },
    /// Request a verification event now.
    Verify {
        /// The upstream id.
        id: String,
    },
    /// Check the upstream stream now (re-creating it if the transmitter lost it).
    Check {
        /// The upstream id.
        id: String,
    },
}

/// `ssfd keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key; it signs from now on, and older keys stay published.
    Generate {
        /// Algorithm (default: signing.algorithm).
        #[arg(long)]
        alg: Option<String>,
    },
    /// List the keys and their state.
    List,
    /// Add a new signing key and retire the others after signing.rotation_overlap_secs.
    Rotate {
        /// Algorithm (default: signing.algorithm).
        #[arg(long)]
        alg: Option<String>,
    },
    /// Print the public JWK Set, as served at the jwks_uri.
    Jwks,
}

/// Parses the command line and runs it; the binary's whole `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ssfd: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Config(ConfigCommand::PrintDefault) = &cli.command {
        print!("{}", config::EXAMPLE);
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Config(ConfigCommand::Check { file }) = &cli.command {
        let file = file.as_ref().or(cli.config.as_ref());
        let config = Config::load(file.map(PathBuf::as_path), std::env::vars())?;
        println!(
            "configuration is valid: issuer {}, listening on {}, database {}",
            config.server.issuer,
            config.server.bind,
            config::redact_url(&config.database.url)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    init_tracing(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(dispatch(cli.command, config))
}

async fn dispatch(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match command {
        Command::Serve => serve(config, clock).await,
        Command::Migrate => {
            open_store(&config).await?;
            println!(
                "migrations applied to {}",
                config::redact_url(&config.database.url)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(keys) => {
            let store = open_store(&config).await?;
            run_keys(keys, &config, &store, clock.as_ref()).await
        }
        Command::Client(command) => {
            let store = open_store(&config).await?;
            run_client(command, &store, clock.as_ref()).await
        }
        Command::Publisher(command) => {
            let store = open_store(&config).await?;
            let kind = crate::auth::CredentialKind::Publisher;
            run_credentials(command, kind, &store, clock.as_ref()).await
        }
        Command::Application(command) => {
            let store = open_store(&config).await?;
            let kind = crate::auth::CredentialKind::Application;
            run_credentials(command, kind, &store, clock.as_ref()).await
        }
        Command::AdminCredential(command) => {
            let store = open_store(&config).await?;
            let kind = crate::auth::CredentialKind::Admin;
            run_credentials(command, kind, &store, clock.as_ref()).await
        }
        Command::Audit(args) => run_audit(args).await,
        Command::Policy(PolicyCommand::Check { file }) => {
            let text = std::fs::read_to_string(&file)?;
            match crate::sessions::policy::Policy::parse(&text, &config.sessions.privilege_levels) {
                Ok(policy) => {
                    for rule in &policy.rules {
                        let actions: Vec<&str> = rule.actions.iter().map(|a| a.as_str()).collect();
                        println!("{:<32} {}", rule.name, actions.join(", "));
                    }
                    println!("{}: {} rules, valid", file.display(), policy.rules.len());
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("{}: {error}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Stream(command) => {
            let store = open_store(&config).await?;
            let state = crate::http::AppState::new(config, store, clock);
            run_stream(command, &state).await
        }
        Command::Upstream(command) => {
            let store = open_store(&config).await?;
            let state = crate::http::AppState::new(config, store, clock);
            run_upstream(command, &state).await
        }
        Command::Emit { file } => {
            let text = match file.as_deref() {
                None => std::io::read_to_string(std::io::stdin())?,
                Some(path) if path.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())?,
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            };
            let store = open_store(&config).await?;
            let state = crate::http::AppState::new(config, store, clock);
            let intake =
                crate::http::parse_json(text.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
            let result = crate::transmitter::intake::submit(&state, intake)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck { url } => {
            let base = url.unwrap_or_else(|| format!("http://{}", config.server.bind));
            healthcheck(&base).await
        }
        Command::Config(_) => unreachable!("handled before the runtime starts"),
    }
}

async fn open_store(config: &Config) -> anyhow::Result<SharedStore> {
    storage::connect(&config.database.url, config.database.max_connections)
        .await
        .with_context(|| format!("cannot open {}", config::redact_url(&config.database.url)))
}

async fn serve(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<ExitCode> {
    let store = open_store(&config).await?;
    let algorithm = Algorithm::from(config.signing.algorithm.as_str());
    let ring = jose::ensure_signing_key(store.as_ref(), &algorithm, clock.as_ref())
        .await
        .context("cannot load or create the signing key")?;
    tracing::info!(kid = %ring.signer().kid(), alg = %ring.signer().alg(), "signing key ready");
    let listener = tokio::net::TcpListener::bind(config.server.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.bind))?;
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        issuer = %config.server.issuer,
        database = %config::redact_url(&config.database.url),
        "ssfd listening"
    );
    let state = crate::http::AppState::new(config, store, clock);
    crate::http::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("ssfd stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

async fn run_keys(
    command: KeysCommand,
    config: &Config,
    store: &SharedStore,
    clock: &dyn Clock,
) -> anyhow::Result<ExitCode> {
    let now = clock.now();
    let algorithm =
        |alg: Option<String>| Algorithm::from(alg.as_deref().unwrap_or(&config.signing.algorithm));
    match command {
        KeysCommand::Generate { alg } => {
            let key = jose::generate(&algorithm(alg), None, now)?;
            store.insert_signing_key(&key).await?;
            println!(
                "generated {} key {}; it signs from now on",
                key.alg, key.kid
            );
        }
        KeysCommand::Rotate { alg } => {
            let overlap = config.signing.rotation_overlap_secs;
            let ring =
                jose::rotate_signing_key(store.as_ref(), &algorithm(alg), overlap, clock).await?;
            println!(
                "rotated: {} key {} signs from now on; previous keys leave the JWKS in {overlap} s",
                ring.signer().alg(),
                ring.signer().kid()
            );
        }
        KeysCommand::List => {
            let rows = store.list_signing_keys().await?;
            let signing = KeyRing::new(rows.clone(), now)
                .ok()
                .map(|ring| ring.signer().kid().to_owned());
            println!(
                "{:<34} {:<6} {:<11} {:<12} RETIRES_AT",
                "KID", "ALG", "STATE", "CREATED_AT"
            );
            for row in rows {
                let state = if Some(&row.kid) == signing.as_ref() {
                    "signing"
                } else if row.retires_at.is_some_and(|at| at <= now) {
                    "retired"
                } else {
                    "published"
                };
                let retires = row
                    .retires_at
                    .map(|at| at.to_string())
                    .unwrap_or_else(|| "-".to_owned());
                println!(
                    "{:<34} {:<6} {:<11} {:<12} {retires}",
                    row.kid, row.alg, state, row.created_at
                );
            }
        }
        KeysCommand::Jwks => {
            let ring = KeyRing::new(store.list_signing_keys().await?, now)?;
            println!("{}", serde_json::to_string_pretty(ring.jwks())?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_client(
    command: ClientCommand,
    store: &SharedStore,
    clock: &dyn Clock,
) -> anyhow::Result<ExitCode> {
    use crate::auth::{self, CredentialKind, SCOPE_MANAGE, SCOPE_READ};
    let now = clock.now();
    match command {
        ClientCommand::Create {
            name,
            scopes,
            static_token,
        } => {
            let scopes: Vec<&str> = if scopes.is_empty() {
                vec![SCOPE_MANAGE, SCOPE_READ]
            } else {
                scopes.iter().map(String::as_str).collect()
            };
            let (client, secret) =
                auth::register_client(store.as_ref(), &name, &scopes, now).await?;
            println!("client_id:     {}", client.client_id);
            println!("client_secret: {secret}");
            println!("scopes:        {}", client.scopes);
            if static_token {
                let (_, token) = auth::create_credential(
                    store.as_ref(),
                    CredentialKind::Receiver,
                    &name,
                    &scopes,
                    Some(&client.client_id),
                    now,
                )
                .await?;
                println!("static_token:  {token}");
            }
            println!("(the secret and token are shown once; ssfd stores only their hashes)");
        }
        ClientCommand::List => {
            println!("{:<34} {:<24} {:<22} STATE", "CLIENT_ID", "NAME", "SCOPES");
            for client in store.list_clients().await? {
                let state = if client.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<34} {:<24} {:<22} {state}",
                    client.client_id, client.name, client.scopes
                );
            }
        }
        ClientCommand::RotateSecret { client_id } => {
            let secret = crate::ids::new_secret();
            store
                .set_client_secret(&client_id, &auth::hash_secret(&secret))
                .await?;
            println!("client_secret: {secret}");
        }
        ClientCommand::Revoke { client_id } => {
            store.revoke_client(&client_id, now).await?;
            println!("revoked client {client_id} and its static tokens");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_stream(
    command: StreamCommand,
    state: &crate::http::AppState,
) -> anyhow::Result<ExitCode> {
    use crate::transmitter::repo;
    let api = |e: crate::http::ApiError| anyhow::anyhow!("{e}");
    match command {
        StreamCommand::List => {
            println!(
                "{:<34} {:<34} {:<9} {:<7} {:>8} {:>6} LAST ERROR",
                "STREAM_ID", "CLIENT_ID", "STATUS", "METHOD", "PENDING", "DEAD"
            );
            for row in state.store.list_streams(None).await? {
                let pending = state
                    .store
                    .pending_sets(&row.stream_id, 100_000)
                    .await?
                    .len();
                let dead = state
                    .store
                    .outbox_entries(&row.stream_id, "dead", 100_000)
                    .await?
                    .len();
                let stats = state.store.delivery_stats(&row.stream_id).await?;
                let method = if row.delivery_method.ends_with("8935") {
                    "push"
                } else {
                    "poll"
                };
                println!(
                    "{:<34} {:<34} {:<9} {:<7} {:>8} {:>6} {}",
                    row.stream_id,
                    row.client_id,
                    row.status,
                    method,
                    pending,
                    dead,
                    stats.last_error.unwrap_or_default()
                );
            }
        }
        StreamCommand::SetStatus {
            stream_id,
            status,
            reason,
        } => {
            let status: crate::protocol::StreamState =
                status.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let stream = repo::get_stream(state, &stream_id)
                .await
                .map_err(api)?
                .ok_or_else(|| anyhow::anyhow!("no stream {stream_id}"))?;
            let signer = repo::signer(state).await.map_err(api)?;
            repo::set_status(state, &stream, status, reason, Some(&signer))
                .await
                .map_err(api)?;
            println!(
                "stream {stream_id} is {status}; its receiver is told by a stream-updated event"
            );
        }
        StreamCommand::ReplayDead { stream_id } => {
            let count = state
                .store
                .replay_dead(&stream_id, state.clock.now())
                .await?;
            println!("{count} dead letters of {stream_id} back in the outbox");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_upstream(
    command: UpstreamCommand,
    state: &crate::http::AppState,
) -> anyhow::Result<ExitCode> {
    use crate::receiver::upstreams::{register_poll, register_push, Registration, UpstreamAuth};
    match command {
        UpstreamCommand::Add {
            issuer,
            delivery,
            client_id,
            client_secret,
            token_endpoint,
            token,
            events,
        } => {
            let auth = match (client_id, client_secret, token) {
                (Some(client_id), Some(client_secret), None) => UpstreamAuth::ClientCredentials {
                    token_endpoint,
                    client_id,
                    client_secret,
                    scope: None,
                },
                (None, _, Some(token)) => UpstreamAuth::Static { token },
                _ => anyhow::bail!("give --client-id and --client-secret, or --token"),
            };
            let shorthand = crate::config::TransmitterConfig {
                events_supported: events,
                ..Default::default()
            };
            let registration = Registration {
                issuer,
                auth,
                events: shorthand.supported_event_types(),
            };
            let upstream = match delivery.as_str() {
                "push" => register_push(state, registration).await?,
                "poll" => register_poll(state, registration).await?,
                other => anyhow::bail!("--delivery must be push or poll, not {other}"),
            };
            println!(
                "upstream {} registered: stream {} at {}",
                upstream.id,
                upstream.remote_stream_id.as_deref().unwrap_or("-"),
                upstream.issuer
            );
            println!("verification requested; `ssfd upstream list` shows when it arrives");
        }
        UpstreamCommand::List => {
            println!(
                "{:<34} {:<40} {:<6} {:<9} VERIFIED_AT",
                "ID", "ISSUER", "METHOD", "STATUS"
            );
            for upstream in state.store.list_upstreams().await? {
                let method = if upstream.delivery_method.ends_with("8935") {
                    "push"
                } else {
                    "poll"
                };
                let verified = upstream
                    .verified_at
                    .map(|at| at.to_string())
                    .unwrap_or_else(|| "-".to_owned());
                println!(
                    "{:<34} {:<40} {:<6} {:<9} {verified}",
                    upstream.id, upstream.issuer, method, upstream.status
                );
            }
        }
        UpstreamCommand::Remove { id, local_only } => {
            if local_only {
                state.store.delete_upstream(&id).await?;
            } else {
                let upstream = state.store.get_upstream(&id).await?;
                crate::receiver::manage::delete(state, &upstream).await?;
            }
            println!("upstream {id} removed");
        }
        UpstreamCommand::AddSubject { id, subject } => {
            let upstream = state.store.get_upstream(&id).await?;
            let subject = parse_subject(&subject)?;
            crate::receiver::manage::change_subject(state, &upstream, &subject, true).await?;
            println!("subject added at upstream {id}");
        }
        UpstreamCommand::RemoveSubject { id, subject } => {
            let upstream = state.store.get_upstream(&id).await?;
            let subject = parse_subject(&subject)?;
            crate::receiver::manage::change_subject(state, &upstream, &subject, false).await?;
            println!("subject removed at upstream {id}");
        }
        UpstreamCommand::Update { id, events } => {
            let upstream = state.store.get_upstream(&id).await?;
            let events = crate::receiver::admin::event_types(events);
            anyhow::ensure!(!events.is_empty(), "no known event type given");
            crate::receiver::manage::update_events(state, &upstream, &events).await?;
            println!("upstream {id} now requests {} event types", events.len());
        }
        UpstreamCommand::Verify { id } => {
            let upstream = state.store.get_upstream(&id).await?;
            crate::receiver::manage::request_verification(state, &upstream).await?;
            println!("verification requested; `ssfd upstream list` shows when it arrives");
        }
        UpstreamCommand::Check { id } => {
            let upstream = state.store.get_upstream(&id).await?;
            let outcome = crate::receiver::manage::check(state, &upstream).await;
            let error = outcome.as_ref().err().map(ToString::to_string);
            state
                .store
                .record_upstream_health(&id, state.clock.now(), error.as_deref())
                .await?;
            match error {
                None => println!("upstream {id}: healthy"),
                Some(error) => anyhow::bail!("upstream {id}: {error}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A subject identifier given as JSON, or as a bare email address.
fn parse_subject(text: &str) -> anyhow::Result<crate::protocol::SubjectId> {
    if text.trim_start().starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(text)?;
        crate::protocol::SubjectId::from_value(value).map_err(anyhow::Error::msg)
    } else {
        Ok(crate::protocol::SubjectId::email(text))
    }
}

/// Static credentials of one kind: publishers (POST /events) and applications (/sessions).
async fn run_credentials(
    command: CredentialCommand,
    kind: crate::auth::CredentialKind,
    store: &SharedStore,
    clock: &dyn Clock,
) -> anyhow::Result<ExitCode> {
    use crate::auth::{self, CredentialKind};
    match command {
        CredentialCommand::Create { name } => {
            let (credential, token) =
                auth::create_credential(store.as_ref(), kind, &name, &[], None, clock.now())
                    .await?;
            let usage = match kind {
                CredentialKind::Application => "on the session API (/sessions)",
                CredentialKind::Admin => "on the admin API (/admin) and with `ssfd audit`",
                _ => "on POST /events",
            };
            println!("id:    {}", credential.id);
            println!("token: {token}");
            println!("(shown once; use it as `Authorization: Bearer <token>` {usage})");
        }
        CredentialCommand::List => {
            println!("{:<34} {:<24} STATE", "ID", "NAME");
            for credential in store.list_credentials(kind.as_str()).await? {
                let state = if credential.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{:<34} {:<24} {state}", credential.id, credential.name);
            }
        }
        CredentialCommand::Revoke { id } => {
            let found = store
                .list_credentials(kind.as_str())
                .await?
                .into_iter()
                .any(|c| c.id == id);
            if !found {
                anyhow::bail!("no {} credential {id}", kind.as_str());
            }
            store.revoke_credential(&id, clock.now()).await?;
            println!("revoked {} credential {id}", kind.as_str());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ssfd audit`: pages through GET /admin/audit.
async fn run_audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let base = format!("{}/admin/audit", args.url.trim_end_matches('/'));
    let mut after: Option<i64> = None;
    if !args.jsonl {
        println!(
            "{:<8} {:<11} {:<20} {:<24} {:<26} SUBJECT",
            "ID", "AT", "ACTION", "SESSION", "RULE"
        );
    }
    loop {
        let mut query: Vec<(&str, String)> = vec![("limit", "1000".to_owned())];
        for (name, value) in [
            ("subject", args.subject.clone()),
            ("session_id", args.session.clone()),
            ("since", args.since.map(|v| v.to_string())),
            ("until", args.until.map(|v| v.to_string())),
            ("after_id", after.map(|v| v.to_string())),
        ] {
            if let Some(value) = value {
                query.push((name, value));
            }
        }
        let response = client
            .get(&base)
            .bearer_auth(&args.token)
            .query(&query)
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            eprintln!(
                "{base} answered {status}: {}",
                body["error_description"].as_str().unwrap_or("")
            );
            return Ok(ExitCode::FAILURE);
        }
        let entries = body["entries"].as_array().cloned().unwrap_or_default();
        for entry in &entries {
            if args.jsonl {
                println!("{entry}");
            } else {
                let text = |name: &str| entry[name].as_str().unwrap_or("-").to_owned();
                println!(
                    "{:<8} {:<11} {:<20} {:<24} {:<26} {}",
                    entry["id"],
                    entry["at"],
                    text("action"),
                    text("session_id"),
                    text("rule"),
                    entry["subject"]
                );
            }
        }
        match entries.last() {
            Some(last) if entries.len() == 1000 => after = last["id"].as_i64(),
            _ => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn healthcheck(base: &str) -> anyhow::Result<ExitCode> {
    let url = format!("{}/healthz", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => {
            println!("ok: {url}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(response) => {
            eprintln!("unhealthy: {url} answered {}", response.status());
            Ok(ExitCode::FAILURE)
        }
        Err(error) => {
            eprintln!("unreachable: {url}: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
