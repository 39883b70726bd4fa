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
