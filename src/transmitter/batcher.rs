//! Group commit for the outbox. Concurrent intakes hand their signed SETs to one task, which
//! writes everything that is waiting in a single transaction and then answers each caller.
//! Under load this turns one commit per event (PostgreSQL manages about 3k durable commits a
//! second here) into one commit per batch; with a single caller it costs one channel hop.

use tokio::sync::{mpsc, oneshot};

use crate::storage::{DbError, NewOutboxRow, SharedStore};

/// Most SETs written in one transaction.
const MAX_BATCH_ROWS: usize = 2048;

type Job = (Vec<NewOutboxRow>, i64, oneshot::Sender<Result<(), DbError>>);

/// A handle to the group-commit task.
#[derive(Debug, Clone)]
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the task (within the current tokio runtime).
    pub fn start(store: SharedStore) -> Self {
        let (jobs, receiver) = mpsc::channel(4096);
        tokio::spawn(run(store, receiver));
        Self { jobs }
    }

    /// Writes `rows` durably; returns once they are committed (all of them, or none).
    pub async fn enqueue(&self, rows: Vec<NewOutboxRow>, now: i64) -> Result<(), DbError> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send((rows, now, done))
            .await
            .map_err(|_| DbError::Other("the outbox writer has stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| DbError::Other("the outbox writer has stopped".to_owned()))?
    }
}

async fn run(store: SharedStore, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        let mut rows = batch[0].0.len();
        while rows < MAX_BATCH_ROWS {
            match jobs.try_recv() {
                Ok(job) => {
                    rows += job.0.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        if batch.len() == 1 {
            let (rows, now, done) = batch.pop().expect("one job");
            let _ = done.send(store.enqueue(&rows, now).await);
            continue;
        }
        let now = batch
            .iter()
            .map(|(_, now, _)| *now)
            .max()
            .unwrap_or_default();
        let all: Vec<NewOutboxRow> = batch
            .iter()
            .flat_map(|(rows, _, _)| rows.iter().cloned())
            .collect();
        match store.enqueue(&all, now).await {
            Ok(()) => {
                for (_, _, done) in batch {
                    let _ = done.send(Ok(()));
                }
            }
            // One bad job must not fail the others: write each on its own.
            Err(_) => {
                for (rows, now, done) in batch {
                    let _ = done.send(store.enqueue(&rows, now).await);
                }
            }
        }
    }
}
