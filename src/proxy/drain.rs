//! Shutdown as the router's requests see it: first it has begun (readiness says
//! "draining" so no new work is sent here), then the grace period ends: waiting calls
//! answer 503 and streams end with an in-band error and `[DONE]`.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once each: shutdown has begun; the requests still running must end now.
#[derive(Debug)]
pub struct Drain {
    ending: tokio::sync::watch::Sender<bool>,
    begun: AtomicBool,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            ending: tokio::sync::watch::Sender::new(false),
            begun: AtomicBool::new(false),
        }
    }
}

impl Drain {
    /// Shutdown has begun: requests running now may finish within the grace period.
    pub fn begin(&self) {
        self.begun.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn has_begun(&self) -> bool {
        self.begun.load(Ordering::Relaxed)
    }

    /// Tells every request still running to end now.
    pub fn drain(&self) {
        self.ending.send_replace(true);
    }

    /// Resolves once `drain` has been called (never, if it is not).
    pub fn drained(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.ending.subscribe();
        async move {
            if receiver.wait_for(|draining| *draining).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
