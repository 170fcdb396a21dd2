//! A backend's HTTP clients: one per worker thread for a backend on the local network,
//! one for every other thread, and one for the probes, all sending to the backend's own
//! origin only.

use std::sync::OnceLock;
use std::time::Duration;

use crate::names::BackendId;

/// The most redirects followed within a backend's own origin (a server that adds or
/// removes a trailing slash, or moves `/v1`, needs one; a loop needs a bound).
const MAX_REDIRECTS: usize = 3;

/// The clients of one backend.
#[derive(Debug)]
pub(super) struct Clients {
    id: BackendId,
    connect_timeout: Duration,
    /// The client (and its pool of connections) of the threads that are not workers
    /// (probes of a backend over HTTPS, tools), and of every thread for a backend over
    /// HTTPS: its own latency dwarfs a thread's wake-up, and a TLS client holds the
    /// system's certificates (~300 KB each).
    shared: reqwest::Client,
    /// One per worker thread for a backend over plain HTTP, built by its thread as it
    /// starts (`prepare_thread`): a connection is driven by a task on the thread that
    /// opened it, so a request on one worker using another's connection would wake that
    /// thread twice.
    per_worker: Box<[OnceLock<reqwest::Client>]>,
    /// For a backend over plain HTTP, the probes' client, which keeps no connection: a
    /// host whose link went silent then fails a probe within the connect timeout
    /// instead of after the probe's whole wait on a kept connection, so it is ejected
    /// (and the calls waiting on it moved) seconds sooner. Over HTTPS the probes share
    /// the shared client, as the calls do.
    probes: Option<reqwest::Client>,
}

impl Clients {
    /// The clients of backend `id` at `urls`, for `workers` worker threads. The ones
    /// every thread may use are built now (a client that cannot be built stops the
    /// start-up).
    pub(super) fn new<'a>(
        id: &BackendId,
        connect_timeout: Duration,
        urls: impl IntoIterator<Item = &'a str>,
        workers: usize,
    ) -> reqwest::Result<Self> {
        let tls = urls.into_iter().any(|url| {
            url.get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("https:"))
        });
        let probes = match tls {
            true => None,
            false => Some(
                builder(id, connect_timeout, false)
                    .pool_max_idle_per_host(0)
                    .build()?,
            ),
        };
        Ok(Clients {
            id: id.clone(),
            connect_timeout,
            shared: builder(id, connect_timeout, tls).build()?,
            per_worker: (0..if tls { 0 } else { workers })
                .map(|_| OnceLock::new())
                .collect(),
            probes,
        })
    }

    /// The client a call on this thread uses.
    pub(super) fn for_call(&self) -> &reqwest::Client {
        let worker = super::worker::current().checked_sub(1);
        match worker.and_then(|w| self.per_worker.get(w)) {
            Some(slot) => slot.get_or_init(|| self.build_for_worker()),
            None => &self.shared,
        }
    }

    /// The client a probe uses.
    pub(super) fn for_probe(&self) -> &reqwest::Client {
        self.probes.as_ref().unwrap_or(&self.shared)
    }

    /// Builds this thread's client now, before the thread serves anything (a client
    /// costs milliseconds to build).
    pub(super) fn prepare_thread(&self) {
        let _ = self.for_call();
    }

    /// A worker's client. Should building one fail after the shared one was built
    /// (nothing it needs can be missing then), the worker shares that one.
    fn build_for_worker(&self) -> reqwest::Client {
        builder(&self.id, self.connect_timeout, false)
            .build()
            .unwrap_or_else(|error| {
                tracing::warn!(backend = %self.id, error = %error, "a worker's HTTP client could not be built; it shares the first");
                self.shared.clone()
            })
    }
}

/// A backend's client, to build; without `tls`, one that trusts no certificate (it
/// never needs one: a redirect to `https:` leaves the origin and is refused) and so does
/// not load the system's.
fn builder(id: &BackendId, connect_timeout: Duration, tls: bool) -> reqwest::ClientBuilder {
    let builder = match tls {
        true => reqwest::Client::builder(),
        false => reqwest::Client::builder().tls_certs_only([]),
    };
    builder
        .connect_timeout(connect_timeout)
        // Without it, Nagle's algorithm meets delayed ACKs and small chunks wait ~40 ms.
        .tcp_nodelay(true)
        // Under the backends' own keep-alive (vLLM's uvicorn and llama-server close idle
        // connections after 5 s), so a request never races the server's close.
        .pool_idle_timeout(Duration::from_secs(4))
        .user_agent(concat!("ai-router/", env!("CARGO_PKG_VERSION")))
        .redirect(same_origin_only(id.clone()))
        // The router retries on its own terms (`outcome`); reqwest's own policy would
        // clone every request's headers and body first, in case.
        .retry(reqwest::retry::never().max_retries_per_request(0))
}

/// The redirect policy of a backend's client: follow a redirect only within the origin
/// (scheme, host and port) the request was sent to, at most `MAX_REDIRECTS` times.
/// The router sends its key and the client's conversation; a backend, or whatever
/// answers in its place, must not be able to send them to another server. reqwest
/// would drop the key on the way, but not the conversation. Within the origin the key
/// already goes, and following spares the admin a broken backend over a trailing slash.
fn same_origin_only(backend: BackendId) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !same_origin {
            // The admin sees where it pointed (an origin has no path, user or password);
            // the client and the session log only that it was refused.
            tracing::warn!(%backend, to = %attempt.url().origin().ascii_serialization(), "refused a redirect to another origin");
            attempt.error(RedirectRefused::OtherOrigin)
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(RedirectRefused::TooMany)
        } else {
            attempt.follow()
        }
    })
}

/// Why a backend's redirect was not followed.
#[derive(Debug, thiserror::Error)]
enum RedirectRefused {
    #[error("it redirected to another host, which the router does not follow")]
    OtherOrigin,
    #[error("it redirected more than {MAX_REDIRECTS} times")]
    TooMany,
}

/// What a refused redirect says, found in `error`'s sources (reqwest's own text names
/// the URL, which the client must not see).
pub(super) fn refused_redirect(error: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<RedirectRefused>() {
            return refused.to_string();
        }
        source = current.source();
    }
    "it redirected somewhere the router does not follow".into()
}
