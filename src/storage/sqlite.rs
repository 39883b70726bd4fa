//! The embedded SQLite store: WAL journal, a busy timeout, foreign keys on.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};

use super::*;

/// A store on one SQLite file (or in memory).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: Pool<Sqlite>,
}

impl SqliteStore {
    /// Opens (creating file and folder if missing) and migrates.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            // WAL with NORMAL sync survives process crashes with every commit intact; only an
            // operating-system crash can lose the last transactions.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let in_memory = options.get_filename().as_os_str().is_empty()
            || url.contains(":memory:")
            || url.contains("mode=memory");
        if !in_memory {
            if let Some(parent) = options.get_filename().parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        DbError::Other(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
            }
        }
        // Every in-memory connection is a database of its own: keep exactly one.
        let max_connections = if in_memory { 1 } else { max_connections };
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

sql_helpers!(Sqlite, lock_stream = "");
sql_store!(SqliteStore, skip_locked = "");

session_store!(SqliteStore, Sqlite, notify = "", skip_locked = "");

impl SqliteStore {
    /// One process owns a SQLite file: there are no other writers to hear of.
    async fn listen_session_changes(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::UnboundedReceiver<String>>, DbError> {
        Ok(None)
    }
}
