//! Where finished session records go: the writer's bounded queue (or nowhere when
//! logging is off), and the observers (metrics, live counters) that count every request
//! from its record, so a request is counted in one place.

use std::sync::Arc;

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

/// Where finished records go: the writer's queue, or nowhere when logging is off.
#[derive(Clone, Debug, Default)]
pub struct SessionSink {
    queue: Option<mpsc::Sender<WriterMsg>>,
    observers: Arc<[Arc<dyn Observer>]>,
    /// How the writer's last write went.
    disk: Option<Arc<DiskHealth>>,
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
        }
    }

    /// A sink that discards records (`sessions.enabled = false`, tools).
    pub fn disabled() -> Self {
        SessionSink::default()
    }

    /// Whether records are written to session logs; without, only the observers read
    /// them, and they need no conversation.
    pub fn writes_logs(&self) -> bool {
        self.queue.is_some()
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
        // timed out): at most half the queue, so a flood of refused requests can never
        // take the places admitted ones wait for; past that it is dropped and counted.
        let room = queue.capacity() > queue.max_capacity() / 2;
        match room.then(|| queue.try_send(WriterMsg::Record(Box::new(record)))) {
            Some(Ok(())) => {}
            None | Some(Err(mpsc::error::TrySendError::Full(_))) => {
                self.observers.iter().for_each(|o| o.dropped());
                tracing::error!(
                    "session writer is behind (a slow or hung log disk, or a flood of refused requests); a session record was dropped"
                );
            }
            Some(Err(mpsc::error::TrySendError::Closed(_))) => {
                tracing::error!("session writer has stopped; a session record was not written");
            }
        }
    }
}
