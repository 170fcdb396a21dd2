//! Where finished session records go: the writer's bounded queue (or nowhere when
//! logging is off), and the observers (metrics, live counters) that count every request
//! from its record, so a request is counted in one place.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;
use tokio::sync::mpsc;

use super::disk::DiskHealth;
use super::log::SessionRecord;

/// Something that counts requests from their records. The record layer calls it; it
/// lives above (`observe`), so the record never depends on what watches it.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// A request has started.
    fn started(&self) {}
    /// A request has ended with `record`.
    fn finished(&self, record: &SessionRecord);
    /// A session-log file was written (`ok`) or could not be.
    fn written(&self, _ok: bool) {}
    /// A record was given up because the writer stayed behind (a hung disk).
    fn dropped(&self) {}
}

/// Records without a reserved place that may wait for the writer at once (each in a
/// task of its own); past this, a record is dropped and counted, so a hung disk costs
/// bounded memory.
const MAX_WAITING: usize = 256;

/// Where finished records go: the writer's queue, or nowhere when logging is off.
#[derive(Clone, Debug, Default)]
pub struct SessionSink {
    queue: Option<mpsc::Sender<WriterMsg>>,
    observers: Arc<[Arc<dyn Observer>]>,
    /// How the writer's last write went.
    disk: Option<Arc<DiskHealth>>,
    /// Records waiting for a place in the queue (see `MAX_WAITING`).
    waiting: Arc<AtomicUsize>,
}

/// What the session-log writer is asked to do, in order.
#[derive(Debug)]
pub enum WriterMsg {
    /// Write this record to its file.
    Record(Box<SessionRecord>),
    /// Re-read the folder and apply the rotation limits.
    Sweep,
    /// Answer once everything queued before this message is on disk.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl SessionSink {
    /// A sink that feeds the writer behind `queue`.
    pub fn new(queue: mpsc::Sender<WriterMsg>) -> Self {
        SessionSink {
            queue: Some(queue),
            observers: Arc::new([]),
            disk: None,
            waiting: Arc::default(),
        }
    }

    /// A sink that discards records (`sessions.enabled = false`, tools).
    pub fn disabled() -> Self {
        SessionSink::default()
    }

    /// The same sink, with `observers` told of every request.
    pub fn observed_by(mut self, observers: Vec<Arc<dyn Observer>>) -> Self {
        self.observers = observers.into();
        self
    }

    /// The same sink, reporting the folder's state from `disk`.
    pub(crate) fn with_disk(mut self, disk: Arc<DiskHealth>) -> Self {
        self.disk = Some(disk);
        self
    }

    /// Why session logs cannot be written now (full disk, folder not writable), or
    /// `None` while they can (or logging is off).
    pub fn disk_problem(&self) -> Option<String> {
        self.disk.as_ref().and_then(|d| d.problem())
    }

    /// A request has started.
    pub(crate) fn started(&self) {
        for observer in self.observers.iter() {
            observer.started();
        }
    }

    /// Reserves a place for one record in the writer's bounded queue, waiting while the
    /// writer is behind, for `wait` at most: a slow disk slows new requests down
    /// instead of filling memory, a hung one does not stop them.
    pub async fn reserve(&self, wait: Duration) -> Option<mpsc::OwnedPermit<WriterMsg>> {
        let queue = self.queue.clone()?;
        match tokio::time::timeout(wait, queue.reserve_owned()).await {
            Ok(place) => place.ok(),
            Err(_) => {
                tracing::warn!(
                    waited_secs = wait.as_secs(),
                    "session writer is behind; the request goes on without a reserved place"
                );
                None
            }
        }
    }

    /// Counts `record` and hands it to the writer without blocking, in its reserved
    /// place when it has one. A full queue never drops it: the send waits in a task of
    /// its own instead, so the writer is slowed, not skipped.
    pub(crate) fn submit(&self, record: SessionRecord, slot: Option<mpsc::OwnedPermit<WriterMsg>>) {
        for observer in self.observers.iter() {
            observer.finished(&record);
        }
        if let Some(slot) = slot {
            slot.send(WriterMsg::Record(Box::new(record)));
            return;
        }
        let Some(queue) = &self.queue else { return };
        // No reserved place (a request turned away, or one whose wait for the writer
        // timed out): wait in a task if the queue is full, up to `MAX_WAITING` of them.
        match queue.try_send(WriterMsg::Record(Box::new(record))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(record)) => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    let _ = queue.blocking_send(record);
                    return;
                };
                if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    self.observers.iter().for_each(|o| o.dropped());
                    tracing::error!(
                        "session writer is behind (is the log disk hung?); a session record was dropped"
                    );
                    return;
                }
                let (queue, waiting) = (queue.clone(), self.waiting.clone());
                runtime.spawn(async move {
                    let _ = queue.send(record).await;
                    waiting.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("session writer has stopped; a session record was not written");
            }
        }
    }
}
