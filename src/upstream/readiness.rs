//! `/health/ready`'s probes, in rounds shared by every call that arrives while one runs
//! or shortly after. An open endpoint that probed every backend afresh on each call
//! would let anyone spend the cloud backend's key and load the GPUs at will.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::Backends;
use super::probe::{self, BackendReport, PROBE_TIMEOUT, Probe};
use crate::names::BackendId;

/// How long a finished round answers `/health/ready`: short enough that a person or a
/// health check sees news at once, long enough that a flood of calls costs one round
/// per this time.
pub const REUSE: Duration = Duration::from_secs(2);

/// What one round found: each backend's endpoint probes, and when it finished.
type Found = (Instant, Arc<BTreeMap<BackendId, Vec<Probe>>>);

/// The round in flight, or the last one.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<Round>>,
}

/// One round: when it started, and its result for every caller that waits for it.
struct Round {
    started: Instant,
    found: Shared<BoxFuture<'static, Found>>,
}

impl Round {
    /// Whether callers may take this round's result: it finished less than `REUSE` ago,
    /// or it is still running. The result is seen only once a caller has polled it, so
    /// a round whose callers all hung up counts as running only as long as a round
    /// normally takes (each probe waits `PROBE_TIMEOUT` at most for its answer); after
    /// that it is stale, however long it sat. (A round slower than that, an error body
    /// trickling in, lets one more round start: still one per that time.)
    fn fresh(&self) -> bool {
        match self.found.peek() {
            Some((finished, _)) => finished.elapsed() < REUSE,
            None => self.started.elapsed() < PROBE_TIMEOUT + REUSE,
        }
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness").finish_non_exhaustive()
    }
}

impl Readiness {
    /// Every backend's report, in `backends`' order: the probes of the round in flight
    /// or of one that finished less than `REUSE` ago, else of a new round; what real
    /// calls have seen (in flight, ejected) is read now.
    pub async fn reports(&self, backends: &Arc<Backends>) -> Vec<BackendReport> {
        let (_, probes) = self.round(backends).await;
        backends
            .iter()
            .map(|backend| {
                let found = probes.get(&backend.id).map_or(&[][..], Vec::as_slice);
                probe::report(backend, found)
            })
            .collect()
    }

    /// The round to wait for. A new one runs as a task of its own: a caller that hangs
    /// up does not cancel it for the others (nor make the next caller start over).
    fn round(&self, backends: &Arc<Backends>) -> Shared<BoxFuture<'static, Found>> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(round) = last.as_ref().filter(|round| round.fresh()) {
            return round.found.clone();
        }
        let task = tokio::spawn(probe_all(backends.clone()));
        let found = async move {
            // A round that panicked found nothing: its backends show as down.
            task.await
                .unwrap_or_else(|_| (Instant::now(), Arc::default()))
        }
        .boxed()
        .shared();
        *last = Some(Round {
            started: Instant::now(),
            found: found.clone(),
        });
        found
    }
}

/// Probes every endpoint of every backend at once.
async fn probe_all(backends: Arc<Backends>) -> Found {
    let probes = backends
        .iter()
        .map(|backend| async move { (backend.id.clone(), probe::endpoints(backend).await) });
    let found = futures_util::future::join_all(probes).await;
    (Instant::now(), Arc::new(found.into_iter().collect()))
}
