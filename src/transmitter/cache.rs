//! In-memory snapshots for the intake hot path: the current signer and the streams with their
//! subjects. Loading them per event would cost a key parse (an RSA self-test signature) and two
//! table scans per SET. A snapshot is reused until this process changes streams or keys (it
//! bumps the generation) or it is older than [`MAX_AGE_MILLIS`], which bounds how long a change
//! made by another replica or by the CLI takes to be seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::RwLock;

use super::fanout::StreamSubjects;
use super::streams::Stream;
use crate::jose::SetSigner;

/// Longest a snapshot is trusted, in milliseconds.
pub const MAX_AGE_MILLIS: i64 = 1000;

/// The streams with their subjects, as the fan-out sees them.
pub type FanoutSnapshot = Arc<Vec<(Stream, StreamSubjects)>>;

#[derive(Debug)]
struct Entry<T> {
    value: T,
    generation: u64,
    loaded_at: i64,
}

/// The transmitter's caches.
#[derive(Debug, Default)]
pub struct Caches {
    generation: AtomicU64,
    signer: RwLock<Option<Entry<SetSigner>>>,
    fanout: RwLock<Option<Entry<FanoutSnapshot>>>,
}

impl Caches {
    /// Marks every snapshot stale: call after changing a stream, a subject or the keys.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn fresh<T: Clone>(&self, entry: &Option<Entry<T>>, now_millis: i64) -> Option<T> {
        let generation = self.generation.load(Ordering::SeqCst);
        entry
            .as_ref()
            .filter(|e| e.generation == generation && now_millis - e.loaded_at < MAX_AGE_MILLIS)
            .map(|e| e.value.clone())
    }

    /// The cached signer, if fresh.
    pub async fn signer(&self, now_millis: i64) -> Option<SetSigner> {
        self.fresh(&*self.signer.read().await, now_millis)
    }

    /// Stores a freshly loaded signer.
    pub async fn put_signer(&self, signer: SetSigner, generation: u64, now_millis: i64) {
        *self.signer.write().await = Some(Entry {
            value: signer,
            generation,
            loaded_at: now_millis,
        });
    }

    /// The cached fan-out snapshot, if fresh.
    pub async fn fanout(&self, now_millis: i64) -> Option<FanoutSnapshot> {
        self.fresh(&*self.fanout.read().await, now_millis)
    }

    /// Stores a freshly loaded fan-out snapshot.
    pub async fn put_fanout(&self, snapshot: FanoutSnapshot, generation: u64, now_millis: i64) {
        *self.fanout.write().await = Some(Entry {
            value: snapshot,
            generation,
            loaded_at: now_millis,
        });
    }

    /// The generation to record with a snapshot: read it BEFORE loading, so that a change
    /// made during the load leaves the snapshot stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}
