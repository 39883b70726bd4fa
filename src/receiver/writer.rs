//! Group commit for received SETs: concurrent pushes and polls hand their SET with its
//! effects to one task, which stores everything waiting in one transaction and then answers
//! each caller. One commit per batch instead of one per SET; a single caller pays one channel
//! hop.

use tokio::sync::{mpsc, oneshot};

use crate::storage::sessions::Effects;
use crate::storage::{DbError, ReceivedEventRow, SharedStore};

/// Most SETs stored in one transaction.
const MAX_BATCH: usize = 512;

type Job = (
    ReceivedEventRow,
    Effects,
    i64,
    oneshot::Sender<Result<bool, DbError>>,
);

/// A handle to the writer task.
#[derive(Debug, Clone)]
pub struct ReceivedWriter {
    jobs: mpsc::Sender<Job>,
}

impl ReceivedWriter {
    /// Starts the task (within the current tokio runtime).
    pub fn start(store: SharedStore) -> Self {
        let (jobs, receiver) = mpsc::channel(4096);
        tokio::spawn(run(store, receiver));
        Self { jobs }
    }

    /// Stores `event` and, if it is new, its `effects`; true when new. Returns once committed.
    pub async fn store(
        &self,
        event: ReceivedEventRow,
        effects: Effects,
        now: i64,
    ) -> Result<bool, DbError> {
        let stopped = || DbError::Other("the received-SET writer has stopped".to_owned());
        let (done, answer) = oneshot::channel();
        self.jobs
            .send((event, effects, now, done))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(store: SharedStore, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let now = batch.iter().map(|job| job.2).max().unwrap_or_default();
        let items: Vec<(ReceivedEventRow, Effects)> = batch
            .iter()
            .map(|(event, effects, _, _)| (event.clone(), effects.clone()))
            .collect();
        match store.apply_received_batch(&items, now).await {
            Ok(stored) => {
                for ((_, _, _, done), new) in batch.into_iter().zip(stored) {
                    let _ = done.send(Ok(new));
                }
            }
            // One bad SET must not fail the others: store each on its own.
            Err(_) if batch.len() > 1 => {
                for (event, effects, now, done) in batch {
                    let _ = done.send(store.apply_received(&event, &effects, now).await);
                }
            }
            Err(error) => {
                if let Some((_, _, _, done)) = batch.pop() {
                    let _ = done.send(Err(error));
                }
            }
        }
    }
}
