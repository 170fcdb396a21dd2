//! Counts the requests being answered, from their arrival until their response body is
//! done or dropped, so that shutdown can tell streams still running from keep-alive
//! connections that merely sit idle.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::watch;

/// The number of requests being answered.
#[derive(Debug)]
pub struct InFlight(watch::Sender<usize>);

impl InFlight {
    /// A counter at zero.
    pub fn new() -> Arc<Self> {
        Arc::new(InFlight(watch::Sender::new(0)))
    }

    /// Counts one request until the returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> Guard {
        self.0.send_modify(|n| *n += 1);
        Guard(self.clone())
    }

    /// Resolves once no request is being answered.
    pub async fn idle(&self) {
        let mut count = self.0.subscribe();
        // The sender lives in `self`: the wait cannot fail while it is borrowed.
        let _ = count.wait_for(|n| *n == 0).await;
    }
}

/// One request being answered; dropping it ends the count.
#[derive(Debug)]
pub struct Guard(Arc<InFlight>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A response body that holds its request's `Guard` until hyper has sent the last frame
/// (or the client went away and the body was dropped): a stream counts for as long as it
/// runs, not only until its headers left.
pub struct Tracked {
    body: Body,
    _guard: Guard,
}

impl Tracked {
    /// `body`, counted by `guard`.
    pub fn new(body: Body, guard: Guard) -> Self {
        Tracked {
            body,
            _guard: guard,
        }
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_every_guard() {
        let in_flight = InFlight::new();
        in_flight.idle().await;
        let (one, two) = (in_flight.start(), in_flight.start());
        let waiting = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.idle().await }
        });
        drop(one);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(Tracked::new(Body::empty(), two));
        waiting.await.unwrap();
    }
}
