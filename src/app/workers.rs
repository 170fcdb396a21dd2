//! The threads that serve connections: each a single-threaded tokio runtime of its own,
//! as nginx has a worker process per core. The accept loop hands each new connection to
//! the next worker, and the connection, its requests and everything they spawn stay on
//! that thread. One multi-threaded runtime for everything spent about a third of its
//! CPU per request on handing tasks between its threads (waking, stealing, parking);
//! `make bench` measures the difference.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How long a stopping worker waits for blocking jobs it started (a `/stats` read of
/// the session folders) before its thread lets go of them.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// What a worker does on its own thread before it serves (blocking work is fine there).
pub type Prepare = Arc<dyn Fn() + Send + Sync>;

/// The worker threads, and the next one to get a connection.
#[derive(Debug)]
pub struct Workers {
    workers: Vec<Worker>,
    next: AtomicUsize,
}

#[derive(Debug)]
struct Worker {
    handle: Handle,
    /// Dropped (or sent) to stop the worker's runtime.
    stop: oneshot::Sender<()>,
    /// Fires once the worker's runtime is gone.
    stopped: oneshot::Receiver<()>,
}

impl Workers {
    /// Starts `count` workers (`ServerConfig::worker_count`; at least one); each runs
    /// `prepare` on its thread before it serves.
    pub fn start(count: usize, prepare: Prepare) -> std::io::Result<Workers> {
        let workers = (0..count.max(1))
            .map(|index| start_one(index, prepare.clone()))
            .collect::<std::io::Result<_>>()?;
        Ok(Workers {
            workers,
            next: AtomicUsize::new(0),
        })
    }

    /// How many workers serve.
    pub fn count(&self) -> usize {
        self.workers.len()
    }

    /// Runs `task` (a connection) on the next worker, in turn.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let next = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        drop(self.workers[next].handle.spawn(task));
    }

    /// Stops every worker: what still runs on them is dropped. Called once nothing is
    /// being answered any more.
    pub async fn stop(self) {
        let mut stopped = Vec::with_capacity(self.workers.len());
        for worker in self.workers {
            drop(worker.stop);
            stopped.push(worker.stopped);
        }
        for done in stopped {
            let _ = tokio::time::timeout(STOP_WAIT * 2, done).await;
        }
    }
}

/// One worker: a thread that drives its runtime until told to stop.
fn start_one(index: usize, prepare: Prepare) -> std::io::Result<Worker> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(format!("ai-router-worker-{index}-blocking"))
        .build()?;
    let handle = runtime.handle().clone();
    let (stop, on_stop) = oneshot::channel::<()>();
    let (stopped_tx, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("ai-router-worker-{index}"))
        .spawn(move || {
            crate::upstream::worker::enter(index + 1);
            prepare();
            // An error means the sender was dropped: the same order to stop.
            let _ = runtime.block_on(on_stop);
            runtime.shutdown_timeout(STOP_WAIT);
            let _ = stopped_tx.send(());
        })?;
    Ok(Worker {
        handle,
        stop,
        stopped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_go_to_each_worker_in_turn_and_run_on_its_thread() {
        let workers = Workers::start(2, Arc::new(|| {})).unwrap();
        assert_eq!(workers.count(), 2);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..4 {
            let tx = tx.clone();
            workers.spawn(async move {
                let name = std::thread::current().name().map(String::from);
                let _ = tx.send((name, crate::upstream::worker::current()));
            });
        }
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(rx.recv().await.unwrap());
        }
        seen.sort();
        let worker = |i: usize| (Some(format!("ai-router-worker-{i}")), i + 1);
        assert_eq!(seen, vec![worker(0), worker(0), worker(1), worker(1)]);
        workers.stop().await;
    }

    #[tokio::test]
    async fn stopping_drops_what_still_runs_and_returns() {
        let workers = Workers::start(1, Arc::new(|| {})).unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        workers.spawn(async move {
            let _kept = tx;
            std::future::pending::<()>().await;
        });
        tokio::time::timeout(Duration::from_secs(5), workers.stop())
            .await
            .expect("stopped");
        assert!(rx.await.is_err(), "the task was dropped with its runtime");
    }
}
