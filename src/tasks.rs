//! The application's background tasks, owned in one place: every long-lived
//! task (the log sweep, checkpoints, the Redis listeners, node stats, the
//! presence beat) is started here, stops when told, and is awaited at
//! shutdown instead of being cut off mid-write when the runtime drops.
//!
//! A [`CancellationToken`] tells them to stop; each task holds a clone of
//! one `mpsc::Sender`, so the receiver sees the channel close exactly when
//! the last of them has ended (mini-redis' "all done" channel). tokio-util's
//! `TaskTracker` would do the same, but it needs tokio-util's `rt` feature,
//! which would rebuild every crate above tokio-util (hyper, axum, sqlx…)
//! for one counter.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Cheap to clone; every clone owns the same tasks.
#[derive(Clone)]
pub struct Tasks {
    inner: Arc<Inner>,
}

struct Inner {
    stop: CancellationToken,
    /// Cloned into every task; taken (dropped) by [`Tasks::stop`] so that
    /// only the tasks' own clones keep the channel open.
    alive: Mutex<Option<mpsc::Sender<()>>>,
    all_done: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

impl Default for Tasks {
    fn default() -> Self {
        let (alive, all_done) = mpsc::channel(1);
        Self {
            inner: Arc::new(Inner {
                stop: CancellationToken::new(),
                alive: Mutex::new(Some(alive)),
                all_done: tokio::sync::Mutex::new(all_done),
            }),
        }
    }
}

impl Tasks {
    /// Runs `task` until it ends or the application stops, whichever comes
    /// first. A task started once stopping has begun is not started.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(alive) = self
            .inner
            .alive
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            tracing::debug!(task = name, "not started: the application is stopping");
            return;
        };
        let stop = self.inner.stop.clone();
        tokio::spawn(
            async move {
                let _alive = alive;
                tokio::select! {
                    () = stop.cancelled() => tracing::debug!("background task stopped"),
                    () = task => tracing::debug!("background task ended"),
                }
            }
            .instrument(tracing::debug_span!("task", name)),
        );
    }

    /// Resolves once stopping has begun (for tasks that want to finish a
    /// step of their own rather than be dropped at an await point).
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.inner.stop.cancelled()
    }

    pub fn is_stopping(&self) -> bool {
        self.inner.stop.is_cancelled()
    }

    /// Tells every task to stop and waits until all have, for at most
    /// `within`. Returns whether they all did.
    pub async fn stop(&self, within: Duration) -> bool {
        self.inner.stop.cancel();
        drop(
            self.inner
                .alive
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let mut all_done = self.inner.all_done.lock().await;
        // `recv` yields None once every sender (one per task) is gone.
        tokio::time::timeout(within, async { while all_done.recv().await.is_some() {} })
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_waits_for_every_task_and_ends_those_still_running() {
        let tasks = Tasks::default();
        let (finished_tx, mut finished_rx) = mpsc::unbounded_channel::<()>();
        for _ in 0..3 {
            let finished = finished_tx.clone();
            tasks.spawn("forever", async move {
                let _finished = finished;
                std::future::pending::<()>().await;
            });
        }
        drop(finished_tx);
        assert!(tasks.stop(Duration::from_secs(5)).await);
        // Every task's future was dropped, so every clone is gone.
        assert!(finished_rx.recv().await.is_none());
        assert!(tasks.is_stopping());
    }

    #[tokio::test]
    async fn a_task_started_after_stop_does_not_run() {
        let tasks = Tasks::default();
        assert!(tasks.stop(Duration::from_secs(1)).await);
        let (ran_tx, mut ran_rx) = mpsc::unbounded_channel::<()>();
        tasks.spawn("late", async move {
            let _ = ran_tx.send(());
        });
        assert!(ran_rx.recv().await.is_none());
    }
}
