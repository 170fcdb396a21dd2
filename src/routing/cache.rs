//! Remembers recent classifier decisions by their exact input: Open WebUI's
//! "regenerate" and SDK retries resend the same conversation, and a repeat should cost
//! no classifier call. Bounded in size, entries expire, and it can be switched off.

use crate::record::decision::Confidence;
use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::names::Label;

/// A cached decision: the label and the reply it came from.
#[derive(Clone, Debug)]
pub struct Cached {
    pub label: Label,
    pub raw: String,
    pub confidence: Option<Confidence>,
}

/// The cache; a key is a hash of the classifier's whole request.
#[derive(Debug)]
pub struct ClassifyCache {
    capacity: usize,
    ttl: Duration,
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<u64, (Instant, Cached)>,
    /// Insertion order, for evicting the oldest when full.
    order: VecDeque<u64>,
}

impl ClassifyCache {
    /// A cache of at most `capacity` decisions, each kept for `ttl`; 0 turns it off.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        ClassifyCache {
            capacity,
            ttl,
            entries: Mutex::default(),
        }
    }

    /// Whether the cache is on (`routing.cache_entries > 0`).
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The key for a classifier request body (model, prompts and conversation),
    /// hashed as it is serialised: no copy of the body, no string.
    pub fn key(body: &serde_json::Map<String, serde_json::Value>) -> u64 {
        let mut hasher = HashWriter(std::collections::hash_map::DefaultHasher::new());
        let _ = serde_json::to_writer(&mut hasher, body);
        hasher.0.finish()
    }

    /// The decision for `key`, if it is there and fresh.
    pub fn get(&self, key: u64) -> Option<Cached> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        entries
            .map
            .get(&key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, cached)| cached.clone())
    }

    /// Remembers a decision, evicting the oldest entries beyond the capacity.
    pub fn put(&self, key: u64, cached: Cached) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.map.insert(key, (Instant::now(), cached)).is_none() {
            entries.order.push_back(key);
        }
        while entries.map.len() > self.capacity {
            match entries.order.pop_front() {
                Some(oldest) => {
                    entries.map.remove(&oldest);
                }
                None => break,
            }
        }
    }
}

/// Feeds serialised bytes straight into a hasher.
struct HashWriter(std::collections::hash_map::DefaultHasher);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(label: Label) -> Cached {
        Cached {
            raw: label.to_string(),
            label,
            confidence: None,
        }
    }

    #[test]
    fn remembers_expires_and_stays_bounded() {
        let cache = ClassifyCache::new(2, Duration::from_secs(60));
        cache.put(1, decision(Label::from("SIMPLE")));
        cache.put(2, decision(Label::from("COMPLEX")));
        assert_eq!(cache.get(1).map(|c| c.label), Some(Label::from("SIMPLE")));
        cache.put(3, decision(Label::from("ENRICH")));
        assert!(cache.get(1).is_none(), "the oldest was evicted");
        assert_eq!(cache.get(3).map(|c| c.label), Some(Label::from("ENRICH")));
        let expired = ClassifyCache::new(2, Duration::ZERO);
        expired.put(1, decision(Label::from("SIMPLE")));
        assert!(expired.get(1).is_none());
        let off = ClassifyCache::new(0, Duration::from_secs(60));
        off.put(1, decision(Label::from("SIMPLE")));
        assert!(off.get(1).is_none());
    }

    #[test]
    fn keys_follow_the_whole_input() {
        let body = |text: &str| {
            let mut map = serde_json::Map::new();
            map.insert(
                "messages".into(),
                serde_json::json!([{"role": "user", "content": text}]),
            );
            map
        };
        assert_eq!(
            ClassifyCache::key(&body("hi")),
            ClassifyCache::key(&body("hi"))
        );
        assert_ne!(
            ClassifyCache::key(&body("hi")),
            ClassifyCache::key(&body("hi!"))
        );
    }
}
