//! The end of shutdown's grace period, as every running request sees it: waiting calls
//! answer 503 and streams end with an in-band error and `[DONE]`.

/// Set once, when the requests still running must end now.
#[derive(Debug)]
pub struct Drain(tokio::sync::watch::Sender<bool>);

impl Default for Drain {
    fn default() -> Self {
        Drain(tokio::sync::watch::Sender::new(false))
    }
}

impl Drain {
    /// Tells every request still running to end now.
    pub fn drain(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once `drain` has been called (never, if it is not).
    pub fn drained(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.0.subscribe();
        async move {
            if receiver.wait_for(|draining| *draining).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
