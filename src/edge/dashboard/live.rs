//! `GET /dashboard/api/live`: the overview pushed as a server-sent event every second,
//! to a bounded number of feeds at once (each holds a permit until its tab closes). A
//! feed ends when shutdown begins: an open tab must not hold the router for its grace.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::overview::snapshot;
use crate::edge::state::AppState;
use crate::error::Error;

/// Between two events.
const TICK: Duration = Duration::from_secs(1);

/// The live feeds open now, at most `limit`.
#[derive(Debug)]
pub struct Feeds {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl Feeds {
    /// Room for `limit` feeds at once.
    pub fn new(limit: usize) -> Self {
        Feeds {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

/// One feed's state between ticks.
struct Feed {
    state: Arc<AppState>,
    _permit: OwnedSemaphorePermit,
    interval: tokio::time::Interval,
}

impl Feed {
    async fn next(&mut self) -> Event {
        self.interval.tick().await;
        let mut value = snapshot(&self.state);
        super::redact(&self.state, &mut value);
        Event::default().event("overview").data(value.to_string())
    }
}

/// The feed handler: a 503 when `dashboard.max_live_feeds` are open or the router is
/// shutting down.
pub(super) async fn feed(State(state): State<Arc<AppState>>) -> Response {
    if state.is_draining() {
        return Error::ShuttingDown.into_response();
    }
    let Ok(permit) = state.dashboard.feeds.permits.clone().try_acquire_owned() else {
        return Error::TooManyFeeds {
            limit: state.dashboard.feeds.limit,
        }
        .into_response();
    };
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let feed = Feed {
        state,
        _permit: permit,
        interval,
    };
    Sse::new(events(feed))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn events(feed: Feed) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await;
        // Checked after the wait: at most a second after shutdown begins.
        (!feed.state.is_draining()).then_some((Ok(event), feed))
    })
}
