//! `GET /dashboard/api/live`: the overview pushed as a server-sent event every second,
//! to a bounded number of feeds at once (each holds a permit until its tab closes). A
//! feed ends when shutdown begins: an open tab must not hold the router for its grace.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::overview::{snapshot, spend};
use crate::edge::state::AppState;
use crate::error::Error;

/// Between two events.
const TICK: Duration = Duration::from_secs(1);
/// Between two reads of the spend (its summary is cached for 30 s anyway).
const SPEND_EVERY: Duration = Duration::from_secs(30);

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
    spend: Value,
    /// A spend read running, so a slow one never delays a tick.
    reading: Option<JoinHandle<Value>>,
    last_read: Option<Instant>,
}

impl Feed {
    async fn next(&mut self) -> Event {
        self.interval.tick().await;
        if let Some(done) = self.reading.take_if(|read| read.is_finished())
            && let Ok(spend) = done.await
        {
            self.spend = spend;
        }
        let due = self.last_read.is_none_or(|at| at.elapsed() >= SPEND_EVERY);
        if due && self.reading.is_none() {
            self.last_read = Some(Instant::now());
            self.reading = Some(tokio::spawn(spend(self.state.clone())));
        }
        let mut value = snapshot(&self.state, &self.spend);
        super::redact(&self.state, &mut value);
        Event::default().event("overview").data(value.to_string())
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(reading) = &self.reading {
            reading.abort();
        }
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
        spend: serde_json::json!({"pending": true}),
        reading: None,
        last_read: None,
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
