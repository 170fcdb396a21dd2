//! Per-client-key limits (only with client keys): chats started per minute and streams
//! open at once. One key cannot starve the others of the GPU; over a limit the answer is
//! a 429 with `Retry-After`, never a queue.
//!
//! The minute limit is a GCRA (a leaky bucket kept as one instant per key): a key may
//! burst its whole minute's worth, then one request per `60 s / limit`. The map holds
//! only keys that passed `client_keys`, so it is bounded by the configured keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;

/// The limits and each key's state.
#[derive(Debug, Default)]
pub struct KeyLimits {
    per_minute: u32,
    max_streams: u32,
    keys: Arc<Mutex<HashMap<String, KeyState>>>,
}

#[derive(Debug, Default)]
struct KeyState {
    /// When the bucket will be empty again (GCRA's "theoretical arrival time").
    empty_at: Option<Instant>,
    /// Streams open now.
    streams: u32,
}

/// A stream's place under `key_max_streams`; dropping it (the session ending) frees it.
#[derive(Debug)]
pub struct StreamSlot {
    key: String,
    keys: Arc<Mutex<HashMap<String, KeyState>>>,
}

impl KeyLimits {
    /// Limits of `per_minute` chats and `max_streams` streams per key (0: none).
    pub fn new(per_minute: u32, max_streams: u32) -> Self {
        KeyLimits {
            per_minute,
            max_streams,
            keys: Arc::default(),
        }
    }

    /// Counts a chat request by `key` against its per-minute limit, or says when to retry.
    pub fn admit(&self, key: &str) -> Result<(), Error> {
        self.admit_at(key, Instant::now())
    }

    /// The time one request takes to drain from the bucket; `None` without a limit.
    fn interval(&self) -> Option<Duration> {
        (self.per_minute > 0).then(|| Duration::from_secs(60) / self.per_minute)
    }

    fn admit_at(&self, key: &str, now: Instant) -> Result<(), Error> {
        let Some(interval) = self.interval() else {
            return Ok(());
        };
        // The bucket holds a minute's worth: a key may be up to this far ahead.
        let burst = Duration::from_secs(60).saturating_sub(interval);
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let state = keys.entry(key.to_string()).or_default();
        let empty_at = state.empty_at.map_or(now, |at| at.max(now));
        let ahead = empty_at.duration_since(now);
        if ahead > burst {
            let wait = ahead - burst;
            return Err(Error::RateLimited {
                limit: self.per_minute,
                // Whole seconds, rounded up: retrying a moment early would fail again.
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            });
        }
        state.empty_at = Some(empty_at + interval);
        Ok(())
    }

    /// Gives back the place `admit` took, for a request the router then turned away
    /// (no capacity, too many streams): the client did nothing wrong.
    pub fn refund(&self, key: &str) {
        let Some(interval) = self.interval() else {
            return;
        };
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = keys.get_mut(key) {
            state.empty_at = state.empty_at.and_then(|at| at.checked_sub(interval));
        }
    }

    /// Takes one of `key`'s stream places, or refuses when it has none left.
    pub fn open_stream(&self, key: &str) -> Result<Option<StreamSlot>, Error> {
        if self.max_streams == 0 {
            return Ok(None);
        }
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let state = keys.entry(key.to_string()).or_default();
        if state.streams >= self.max_streams {
            return Err(Error::TooManyStreams {
                limit: self.max_streams,
            });
        }
        state.streams += 1;
        Ok(Some(StreamSlot {
            key: key.to_string(),
            keys: self.keys.clone(),
        }))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = keys.get_mut(&self.key) {
            state.streams = state.streams.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_may_burst_its_minute_then_waits_for_the_bucket() {
        let limits = KeyLimits::new(3, 0);
        let start = Instant::now();
        for _ in 0..3 {
            limits.admit_at("a", start).unwrap();
        }
        let Err(Error::RateLimited {
            retry_after_secs, ..
        }) = limits.admit_at("a", start)
        else {
            panic!("the fourth request in the same instant must be refused");
        };
        // One request drains every 20 s.
        assert_eq!(retry_after_secs, 20);
        // Another key is not affected.
        limits.admit_at("b", start).unwrap();
        // After 20 s one more fits, and only one.
        let later = start + Duration::from_secs(20);
        limits.admit_at("a", later).unwrap();
        assert!(limits.admit_at("a", later).is_err());
    }

    #[test]
    fn a_refund_gives_the_place_back() {
        let limits = KeyLimits::new(2, 0);
        let start = Instant::now();
        limits.admit_at("a", start).unwrap();
        limits.admit_at("a", start).unwrap();
        limits.refund("a");
        limits.admit_at("a", start).unwrap();
        assert!(limits.admit_at("a", start).is_err());
    }

    #[test]
    fn a_stream_place_comes_back_when_the_slot_is_dropped() {
        let limits = KeyLimits::new(0, 2);
        let first = limits.open_stream("a").unwrap();
        let _second = limits.open_stream("a").unwrap();
        assert!(matches!(
            limits.open_stream("a"),
            Err(Error::TooManyStreams { limit: 2 })
        ));
        assert!(limits.open_stream("b").unwrap().is_some());
        drop(first);
        assert!(limits.open_stream("a").unwrap().is_some());
    }

    #[test]
    fn zero_means_no_limit() {
        let limits = KeyLimits::new(0, 0);
        for _ in 0..1000 {
            limits.admit("a").unwrap();
            assert!(limits.open_stream("a").unwrap().is_none());
        }
    }
}
