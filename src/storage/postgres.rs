//! The PostgreSQL store, for production and for several replicas sharing one database.

use sqlx::postgres::PgPoolOptions;
use sqlx::{Pool, Postgres};

use super::*;

/// A store on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: Pool<Postgres>,
}

impl PgStore {
    /// Connects and migrates. Replicas starting together are safe: sqlx takes an advisory
    /// lock around migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

sql_helpers!(Postgres, lock_stream = "FOR SHARE OF s");
sql_store!(PgStore, skip_locked = "FOR UPDATE OF o SKIP LOCKED");

session_store!(
    PgStore,
    Postgres,
    notify = "SELECT pg_notify('ssfd_sessions', $1)",
    skip_locked = "FOR UPDATE SKIP LOCKED"
);

impl PgStore {
    /// Listens on [`sessions::CHANNEL`] and forwards each payload. After a lost connection
    /// (notifications may have been missed) it forwards [`sessions::RELOAD_ALL`].
    async fn listen_session_changes(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::UnboundedReceiver<String>>, DbError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(sessions::CHANNEL).await?;
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let payload = match listener.try_recv().await {
                    Ok(Some(notification)) => notification.payload().to_owned(),
                    Ok(None) => sessions::RELOAD_ALL.to_owned(),
                    Err(error) => {
                        tracing::warn!(%error, "session change listener failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        sessions::RELOAD_ALL.to_owned()
                    }
                };
                if sender.send(payload).is_err() {
                    break; // nobody listens any more
                }
            }
        });
        Ok(Some(receiver))
    }
}
