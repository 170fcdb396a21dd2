//! A backend's SSE stream up to its first event: the content type is checked and the
//! first event read before anything is committed to the client, so a failure this early
//! is an ordinary error (a 502, a retry on another endpoint, or a failover).

use std::pin::Pin;
use std::time::Duration;

/// Largest single stream event, whatever `max_response_bytes` allows for a whole answer.
/// A real chunk is a few hundred bytes; and the SSE parser rescans an event that has not
/// ended with every chunk, inside one poll, so a 16 MiB event cost 15 s of a runtime
/// worker (measured) before its size bound could act. At 1 MiB it costs milliseconds.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::error::Error;
use crate::error::UpstreamError;
use crate::names::BackendId;
use crate::secret::Secret;

use super::Backend;
use super::pool::Lease;

mod read;
pub use read::ReadError;

/// The backend's events after the first, parsed from its bytes.
pub type Events = Pin<
    Box<dyn Stream<Item = Result<eventsource_stream::Event, EventStreamError<ReadError>>> + Send>,
>;

/// A backend stream whose first event has arrived and is not an error. It holds its
/// endpoint's lease: the endpoint counts it in flight until the stream is dropped.
pub struct OpenStream {
    /// The first event.
    pub first: eventsource_stream::Event,
    /// The events after it.
    pub rest: Events,
    /// The backend sending it.
    pub backend: BackendId,
    /// Its idle timeout, for messages.
    pub idle: Duration,
    /// The endpoint's lease, released with the stream.
    pub lease: Lease,
    /// The backend's key, to keep out of what an in-band error tells the client.
    pub key: Option<Secret>,
}

/// Checks the stream's content type and waits (within the idle timeout) for its first
/// event. Anything wrong so far is an ordinary error: nothing has reached the client.
pub(super) async fn open(
    backend: &Backend,
    response: reqwest::Response,
    lease: Lease,
) -> Result<OpenStream, Error> {
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("text/event-stream") {
        return Err(
            backend.protocol_error(format!("expected an event stream, got {content_type:?}"))
        );
    }
    let idle = backend.timeout;
    let max_event = backend.max_response_bytes.min(MAX_EVENT_BYTES);
    let bytes = read::guarded(response.bytes_stream(), idle, max_event);
    let mut rest: Events = Box::pin(bytes.eventsource());
    // The first event within the timeout, however the backend fills the wait: comments
    // (`: ping`) and a trickle of bytes keep the byte timer alive, but not this one.
    let first = match tokio::time::timeout(idle, rest.next()).await {
        Err(_) => return Err(backend.timed_out(idle)),
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => return Err(read_error(backend, idle, e)),
        Ok(None) => return Err(backend.protocol_error("the stream ended before any event")),
    };
    match serde_json::from_str::<Value>(&first.data) {
        Ok(value) if is_error(&value) => {
            let error = UpstreamError::from_event(&backend.id, &value);
            return Err(Error::UpstreamStatus {
                backend: backend.id.clone(),
                error: Box::new(backend.redact(error)),
            });
        }
        // Garbage before anything was relayed is an ordinary error too (a 502 the
        // client may retry, or a failover), not a 200 that breaks off at once.
        Err(_) if first.data.trim() != "[DONE]" => {
            return Err(backend.protocol_error("its first event is not JSON"));
        }
        _ => {}
    }
    Ok(OpenStream {
        first,
        rest,
        backend: backend.id.clone(),
        idle,
        lease,
        key: backend.key().cloned(),
    })
}

fn read_error(backend: &Backend, idle: Duration, error: EventStreamError<ReadError>) -> Error {
    match error {
        EventStreamError::Transport(ReadError::Idle(_)) => backend.timed_out(idle),
        // The connection died before the first event (a server killed mid-request):
        // nothing reached the client, so it is as if the server could not be reached.
        EventStreamError::Transport(ReadError::Transport(_)) => Error::UpstreamUnreachable {
            backend: backend.id.clone(),
            reason: "connection lost before the first event".into(),
        },
        other => backend.protocol_error(other.to_string()),
    }
}

/// An error event (`{"error": {…}}`); a chunk with `"error": null` is not one.
pub fn is_error(event: &Value) -> bool {
    event.get("error").is_some_and(|e| !e.is_null())
}
