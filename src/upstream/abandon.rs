//! Giving up an attempt on an endpoint the pool ejects while the attempt waits for its
//! first byte, when another healthy endpoint can take the request at once.
//!
//! Why: a host whose link goes down answers nothing, not even a reset, and a request
//! already sent to it (on a kept-alive connection, so no connect timeout applies) would
//! wait its whole timeout and end in a 504. Its own clock cannot tell that silence from
//! a long answer: vLLM sends a JSON answer's headers only when the answer is done, so no
//! shorter wait is fair for JSON. The pool's health can tell: probes (`GET …/models`,
//! which a busy server still answers at once) and other calls eject a silent host within
//! `failure_threshold` × (probe interval + probe wait). That one signal serves JSON and
//! streams alike, needs no new setting, and leaves a single-endpoint backend (nowhere
//! else to go) waiting as before. A per-attempt wait for a stream's headers would cover
//! streams only, and would give up on a live server that is slow to start a stream.
//!
//! Nothing has reached the client while an attempt runs (`call` returns before), so the
//! request moves without a trace for the client; the deadline stays the request's own.

use std::future::Future;

use tokio::sync::watch;

use super::pool::Pool;

/// Runs `attempt` on the endpoint at `index` of `pool` to its end, unless `ejections`
/// says that endpoint was ejected meanwhile and `pool` has a healthy endpoint that is
/// neither it nor in `tried`: then `None`, and the attempt (its connection) is dropped.
pub(super) async fn unless_ejected<T>(
    pool: &Pool,
    index: usize,
    tried: &[usize],
    mut ejections: watch::Receiver<u64>,
    attempt: impl Future<Output = T>,
) -> Option<T> {
    let mut attempt = std::pin::pin!(attempt);
    loop {
        tokio::select! {
            // An attempt that ends as its endpoint is ejected (its own failure may be
            // what ejects it) keeps its result.
            biased;
            done = &mut attempt => return Some(done),
            changed = ejections.changed() => {
                if changed.is_err() {
                    // The endpoint is gone with its pool: nothing will announce anything.
                    return Some(attempt.await);
                }
                if pool.has_other_healthy(index, tried) {
                    return None;
                }
                // Nowhere better to go: this endpoint may still answer.
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::BackendId;
    use std::time::Duration;

    /// An attempt that would wait this long (the clock is paused: it ends at once when
    /// nothing else can happen) instead of being given up.
    const HOUR: Duration = Duration::from_secs(3600);

    fn id() -> BackendId {
        BackendId::from("primary")
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_moves_only_when_another_endpoint_can_take_it() {
        let pool = Pool::new(["http://a/v1", "http://b/v1"]);
        let lease = pool.pick(&[1]).unwrap();
        let (a, b) = (&pool.endpoints()[0], &pool.endpoints()[1]);
        // B is down too: A's ejection leaves nowhere better, the attempt goes on.
        b.failure(&id(), "refused", 1);
        let waiting = unless_ejected(&pool, 0, &[], lease.ejections(), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            "answered"
        });
        let eject_a = async { a.failure(&id(), "timed out", 1) };
        let (done, ()) = tokio::join!(waiting, eject_a);
        assert_eq!(done, Some("answered"));
        // B is back: the next ejection of A gives the attempt up.
        b.success(&id(), Duration::from_millis(1));
        a.success(&id(), Duration::from_millis(1));
        let lease = pool.pick(&[1]).unwrap();
        let waiting = unless_ejected(&pool, 0, &[], lease.ejections(), tokio::time::sleep(HOUR));
        let eject_a = async { a.failure(&id(), "timed out", 1) };
        let (done, ()) = tokio::join!(waiting, eject_a);
        assert_eq!(done, None);
        // Not when B was already tried.
        a.success(&id(), Duration::from_millis(1));
        let lease = pool.pick(&[1]).unwrap();
        let waiting = unless_ejected(&pool, 0, &[1], lease.ejections(), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        let eject_a = async { a.failure(&id(), "timed out", 1) };
        let (done, ()) = tokio::join!(waiting, eject_a);
        assert_eq!(done, Some(()));
    }

    #[tokio::test(start_paused = true)]
    async fn an_ejection_between_the_pick_and_the_wait_counts_but_a_trial_is_kept() {
        let pool = Pool::new(["http://a/v1", "http://b/v1"]);
        let a = &pool.endpoints()[0];
        let lease = pool.pick(&[1]).unwrap();
        a.failure(&id(), "timed out", 1);
        let done = unless_ejected(&pool, 0, &[], lease.ejections(), tokio::time::sleep(HOUR)).await;
        assert_eq!(done, None, "the ejection before the wait was missed");
        // A trial of the ejected A (B tried already) is not given up for A being down.
        drop(lease);
        let trial = pool.pick(&[1]).unwrap();
        let done = unless_ejected(&pool, 0, &[], trial.ejections(), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
        })
        .await;
        assert_eq!(done, Some(()));
    }
}
