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
