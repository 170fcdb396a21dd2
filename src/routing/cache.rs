//! Remembers recent things by a hash, bounded in size, each for a while: the classifier's
//! decisions by their exact input (Open WebUI's "regenerate" and SDK retries resend the
//! same conversation, and a repeat should cost no classifier call), and each
//! conversation's highest route (`sticky`). Either can be switched off.

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

/// The classifier's cache; a key is a hash of the classifier's whole request.
pub type ClassifyCache = Recent<Cached>;

/// At most `capacity` values by key, each kept for `ttl` after it was put.
#[derive(Debug)]
pub struct Recent<V> {
    capacity: usize,
    ttl: Duration,
    entries: Mutex<Entries<V>>,
}

#[derive(Debug)]
struct Entries<V> {
    map: HashMap<u64, (Instant, V)>,
    /// Insertion order, for evicting the oldest when full.
    order: VecDeque<u64>,
}

impl ClassifyCache {
    /// The key for a classifier request body (model, prompts and conversation),
    /// hashed as it is serialised: no copy of the body, no string.
    pub fn key(body: &serde_json::Map<String, serde_json::Value>) -> u64 {
        hash_of(body)
    }
}

/// A hash of `value` as it is serialised: no copy, no string.
pub fn hash_of(value: &impl serde::Serialize) -> u64 {
    let mut hasher = HashWriter(std::collections::hash_map::DefaultHasher::new());
    let _ = serde_json::to_writer(&mut hasher, value);
    hasher.0.finish()
}

impl<V: Clone> Recent<V> {
    /// At most `capacity` values, each kept for `ttl`; 0 turns it off.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Recent {
            capacity,
            ttl,
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// Whether it is on (a capacity above 0).
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The value for `key`, if it is there and fresh.
    pub fn get(&self, key: u64) -> Option<V> {
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

    /// Remembers a value (its time starts again), evicting the oldest beyond the capacity.
    pub fn put(&self, key: u64, value: V) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.map.insert(key, (Instant::now(), value)).is_none() {
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
