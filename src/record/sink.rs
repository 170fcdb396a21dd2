//! Where finished session records go: the writer's bounded queue (or nowhere when
//! logging is off), and the observers that count every request from its record: live
//! stats, Prometheus metrics and backend health.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::record::session::SessionRecord;

/// Where finished records go: the writer's queue, or nowhere when logging is off.
#[derive(Clone, Debug)]
pub struct SessionSink {
    queue: Option<mpsc::Sender<WriterMsg>>,
    live: Arc<crate::observe::live::LiveStats>,
    metrics: Arc<crate::observe::metrics::Metrics>,
    health: Arc<crate::upstream::health::HealthBoard>,
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
            live: Arc::default(),
            metrics: Arc::default(),
            health: Arc::default(),
        }
    }

    /// A sink that discards records (`sessions.enabled = false`).
    pub fn disabled() -> Self {
        SessionSink {
            queue: None,
            live: Arc::default(),
            metrics: Arc::default(),
            health: Arc::default(),
        }
    }

    /// The Prometheus metrics, for `GET /metrics` and the writer.
    pub fn metrics(&self) -> &Arc<crate::observe::metrics::Metrics> {
        &self.metrics
    }

    /// Which backends are up, fed by every finished call.
    pub fn health(&self) -> &Arc<crate::upstream::health::HealthBoard> {
        &self.health
    }

    /// Uses `board` for backend health (so its threshold comes from the config).
    pub fn with_health(mut self, board: crate::upstream::health::HealthBoard) -> Self {
        self.health = Arc::new(board);
        self
    }

    /// The counters kept since start-up, for `GET /stats`.
    pub fn live(&self) -> &crate::observe::live::LiveStats {
        &self.live
    }

    /// Hands a record to the writer without blocking. A full queue never drops it: the
    /// send waits in a task of its own instead, so the writer is slowed, not skipped.
    /// Reserves a place for one record in the writer's bounded queue, waiting while the
    /// writer is behind: a slow disk slows new requests down instead of filling memory.
    pub async fn reserve(&self) -> Option<mpsc::OwnedPermit<WriterMsg>> {
        self.queue.clone()?.reserve_owned().await.ok()
    }

    pub(crate) fn submit(&self, record: SessionRecord, slot: Option<mpsc::OwnedPermit<WriterMsg>>) {
        self.live.finished(&record);
        self.metrics.finished(&record);
        for step in &record.steps {
            // Passive signals: no answer or a 5xx says the backend is unwell; a 4xx is
            // about the request and says nothing either way.
            match (step.status, &step.error) {
                (Some(status), None) if status < 400 => self.health.success(step.provider),
                (None, Some(error)) => self.health.failure(step.provider, error),
                (Some(status), Some(error)) if status >= 500 => {
                    self.health.failure(step.provider, error)
                }
                _ => {}
            }
        }
        if let Some(slot) = slot {
            slot.send(WriterMsg::Record(Box::new(record)));
            return;
        }
        let Some(queue) = &self.queue else { return };
        // No reserved place (tools, tests): never drop; wait in a task if full.
        match queue.try_send(WriterMsg::Record(Box::new(record))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(record)) => {
                let queue = queue.clone();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let _ = queue.send(record).await;
                    });
                } else {
                    let _ = queue.blocking_send(record);
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("session writer has stopped; a session record was not written");
            }
        }
    }
}
