//! The backends: each an OpenAI-compatible server or a pool of them, the one call that
//! every step makes, the one reading of a failure that retry, failover and health share,
//! and the probes that watch every endpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::BackendConfig;
use crate::names::BackendId;
use crate::secret::Secret;

mod abandon;
mod backend;
pub mod call;
mod clients;
pub mod outcome;
pub mod pool;
pub mod probe;
pub mod readiness;
pub mod stream;
pub mod worker;

pub use backend::{Backend, read_key, redact};
pub use call::{Expect, Reply, call, call_json_within};

/// Every configured backend, by name; built once at start-up.
#[derive(Debug, Default)]
pub struct Backends {
    by_name: BTreeMap<BackendId, Arc<Backend>>,
}

impl Backends {
    /// Builds every backend's clients (one per worker thread of `workers`) and pool;
    /// an endpoint is ejected after `failure_threshold` failures in a row.
    pub fn build(
        configs: &BTreeMap<String, BackendConfig>,
        failure_threshold: u32,
        workers: usize,
    ) -> Result<Self, reqwest::Error> {
        let by_name = configs
            .iter()
            .map(|(name, config)| {
                let id = BackendId::from(name.as_str());
                let backend = Backend::new(id.clone(), config, failure_threshold, workers)?;
                Ok((id, Arc::new(backend)))
            })
            .collect::<Result<_, reqwest::Error>>()?;
        Ok(Backends { by_name })
    }

    /// Builds every backend's client for this (worker) thread; see
    /// `Backend::prepare_thread`.
    pub fn prepare_thread(&self) {
        self.iter().for_each(|backend| backend.prepare_thread());
    }

    /// The backend called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Backend>> {
        self.by_name.get(name)
    }

    /// Every backend, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.by_name.values()
    }

    /// The backends whose every endpoint is ejected, for the session log.
    pub fn down(&self) -> Vec<BackendId> {
        self.iter()
            .filter(|b| b.pool.is_down())
            .map(|b| b.id.clone())
            .collect()
    }

    /// The backends' keys and the passwords in their URLs, which must never reach a
    /// session log.
    pub fn secrets(&self) -> Vec<Secret> {
        self.iter()
            .flat_map(|b| {
                let passwords = b.pool.endpoints().iter().filter_map(|e| e.password());
                b.key().cloned().into_iter().chain(passwords)
            })
            .collect()
    }
}
