//! Relays a backend's SSE stream to the client event by event, as each arrives (its
//! first event was read before the 200 was committed: see `upstream::stream`). It
//! rewrites `model`, captures the answer into the session record, and after the headers
//! reports failures in-band: one `data: {"error":…}` event, then `[DONE]`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::response::sse::Event;
use eventsource_stream::EventStreamError;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tracing::Instrument;

use crate::error::Error;
use crate::error::UpstreamError;
use crate::names::BackendId;
use crate::record::capture::{self, ChunkView};
use crate::record::log::Outcome;
use crate::record::log::StepRecord;
use crate::record::session::{Session, millis};
use crate::secret::Secret;
use crate::upstream::pool::Lease;
use crate::upstream::redact;
use crate::upstream::stream::{Events, OpenStream, ReadError, is_error};

/// What the relay needs to know about the client and the router.
pub struct RelayOptions {
    /// Name written into every chunk's `model`.
    pub virtual_model: Arc<str>,
    /// Whether the client asked for the usage-only chunk.
    pub include_usage: bool,
    /// Resolves when shutdown's grace period is over: the stream must end now.
    pub drained: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Most bytes of the answer (and of the reasoning) kept in the session record.
    pub max_answer_bytes: usize,
}

enum Phase {
    Relaying,
    /// An error was sent in-band; `[DONE]` follows.
    Ending,
    Done,
}

struct Relay {
    pending: Option<eventsource_stream::Event>,
    events: Events,
    session: Option<Session>,
    step: usize,
    called_at: Instant,
    options: RelayOptions,
    backend: BackendId,
    idle: std::time::Duration,
    /// Fires when no event came for `idle`.
    silence: Pin<Box<tokio::time::Sleep>>,
    key: Option<Secret>,
    /// The endpoint counts this stream in flight until the relay ends.
    _lease: Lease,
    saw_finish: bool,
    error: Option<String>,
    phase: Phase,
    /// The virtual model as it goes between a JSON string's quotes.
    model_json: String,
    span: tracing::Span,
}

/// Turns an opened backend stream into the client's event stream. The session moves in:
/// it is finished when the stream ends, or records `client_disconnected` if the client
/// drops the stream first (which also drops, and so cancels, the backend request).
pub fn relay(
    stream: OpenStream,
    session: Session,
    step: usize,
    called_at: Instant,
    options: RelayOptions,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let model_json = json_string_body(&options.virtual_model);
    let relay = Relay {
        pending: Some(stream.first),
        events: stream.rest,
        session: Some(session),
        step,
        called_at,
        options,
        backend: stream.backend,
        idle: stream.idle,
        silence: Box::pin(tokio::time::sleep(stream.idle)),
        key: stream.key,
        _lease: stream.lease,
        saw_finish: false,
        error: None,
        phase: Phase::Relaying,
        model_json,
        // The body is polled after the handler returned: keep the request's span.
        span: tracing::Span::current(),
    };
    futures_util::stream::unfold(relay, |mut relay| async move {
        let span = relay.span.clone();
        let event = relay.next_event().instrument(span).await?;
        Some((Ok(event), relay))
    })
}

/// A backend stream opened after the client's headers were sent (ENRICH streams its
/// headers first and keeps the client alive during the search hop).
pub struct Prepared {
    /// The opened stream, or why it could not be opened.
    pub result: Result<OpenStream, Error>,
    /// The session, now with every step before this one.
    pub session: Session,
    /// The step of the call being relayed.
    pub step: usize,
    /// When that call was sent.
    pub called_at: Instant,
}

/// Relays the stream `prepare` opens. Headers have gone out before it resolves, so a
/// failure to open becomes an in-band error followed by `[DONE]`.
pub fn relay_after(
    prepare: impl Future<Output = Prepared> + Send + 'static,
    options: RelayOptions,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let mut options = Some(options);
    // The closure runs when the body is first polled, outside the request's span: the
    // relay must be built inside it to log with the request id.
    let span = tracing::Span::current();
    futures_util::stream::once(prepare).flat_map(move |prepared| {
        let _in_request = span.enter();
        let Prepared {
            result,
            session,
            step,
            called_at,
        } = prepared;
        // `once` yields a single item, so the options are always still here.
        match (result, options.take()) {
            (Ok(stream), Some(options)) => {
                relay(stream, session, step, called_at, options).left_stream()
            }
            (Ok(_), None) => futures_util::stream::iter(Vec::new()).right_stream(),
            (Err(error), _) => failed(error, session, step, called_at).right_stream(),
        }
    })
}

/// The two events that end a stream that could not be opened: the error, then `[DONE]`.
fn failed(
    error: Error,
    mut session: Session,
    step: usize,
    called_at: Instant,
) -> futures_util::stream::Iter<std::vec::IntoIter<Result<Event, Infallible>>> {
    let message = error.to_string();
    if let Some(record) = session.step(step) {
        record.error = Some(message.clone());
        record.duration_ms = millis(called_at.elapsed());
        record.set_failed_status(&error);
    }
    session.finish(Outcome::Error, 200, Some(message));
    futures_util::stream::iter(vec![
        Ok(json_event(&error.envelope())),
        Ok(Event::default().data("[DONE]")),
    ])
}

impl Relay {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.phase {
                Phase::Done => return None,
                Phase::Ending => return Some(self.done()),
                Phase::Relaying => {}
            }
            let next = match self.pending.take() {
                Some(event) => Some(Ok(event)),
                None => {
                    // One timer for the whole stream, set afresh for each wait (not
                    // while the client takes its time with the last event).
                    let idle_until = tokio::time::Instant::now() + self.idle;
                    self.silence.as_mut().reset(idle_until);
                    tokio::select! {
                        biased;
                        () = &mut self.options.drained => {
                            let message = "the router is shutting down; the answer was cut short";
                            return Some(self.fail(message.into(), "router_shutdown"));
                        }
                        // An event that is ready wins over the timer that ran out.
                        next = self.events.next() => next,
                        // Per event, not per byte: a backend that only sends comments
                        // (`: ping`) or a trickle of bytes has gone silent all the same.
                        () = &mut self.silence => Some(Err(EventStreamError::Transport(
                            ReadError::Idle(self.idle.as_secs()),
                        ))),
                    }
                }
            };
            match next {
                Some(Ok(event)) if event.data.trim() == "[DONE]" => return Some(self.done()),
                Some(Ok(event)) => {
                    if let Some(out) = self.on_data(&event.data) {
                        return Some(out);
                    }
                }
                Some(Err(EventStreamError::Transport(ReadError::Idle(_)))) => {
                    let message = format!(
                        "the {} backend sent nothing for {} s",
                        self.backend,
                        self.idle.as_secs()
                    );
                    return Some(self.fail(message, "upstream_timeout"));
                }
                Some(Err(EventStreamError::Transport(ReadError::Transport(e)))) => {
                    let message = format!("the {} backend stream failed: {e}", self.backend);
                    return Some(self.fail(message, "upstream_stream_error"));
                }
                // Bytes that are not text, or not SSE: the backend broke the protocol.
                Some(Err(e)) => {
                    let message =
                        format!("the {} backend sent an invalid stream: {e}", self.backend);
                    return Some(self.fail(message, "upstream_invalid_response"));
                }
                None if self.saw_finish => return Some(self.done()),
                None => {
                    let message = format!(
                        "the {} backend closed the stream before the answer was complete",
                        self.backend
                    );
                    return Some(self.fail(message, "upstream_stream_incomplete"));
                }
            }
        }
    }

    /// Handles one data event; `None` means it is not for the client (a usage chunk
    /// nobody asked for) and the next event should be read.
    fn on_data(&mut self, data: &str) -> Option<Event> {
        if let Some(view) = ChunkView::parse(data)
            && let Some(passed) = self.pass_on(data, &view)
        {
            return Some(passed);
        }
        let Ok(mut chunk) = serde_json::from_str::<Value>(data) else {
            let message = format!(
                "the {} backend sent an event that is not JSON",
                self.backend
            );
            return Some(self.fail(message, "upstream_invalid_response"));
        };
        if is_error(&chunk) {
            let error = redact(
                UpstreamError::from_event(&self.backend, &chunk),
                self.key.as_ref(),
            );
            self.error = Some(error.message.clone());
            self.phase = Phase::Ending;
            return Some(json_event(&error.envelope()));
        }
        self.capture(|step, cap| capture::chunk(step, &chunk, cap));
        if capture::is_usage_only(&chunk) && !self.options.include_usage {
            return None;
        }
        if !self.options.include_usage
            && let Some(fields) = chunk.as_object_mut()
        {
            // We asked the backend for usage on the client's behalf; keep it off the wire.
            fields.remove("usage");
        }
        if let Some(fields) = chunk.as_object_mut() {
            fields.insert("model".into(), Value::from(&*self.options.virtual_model));
        }
        Some(json_event(&chunk))
    }

    /// The common chunk, passed on as it came with only its `model` replaced: no `Value`
    /// built or written, one copy of the bytes. `None` when the chunk needs more (an
    /// error, usage the client did not ask for, a model name with escapes): the general
    /// path reads it then.
    fn pass_on(&mut self, data: &str, view: &ChunkView<'_>) -> Option<Event> {
        if view.error.is_some() || (view.usage.is_some() && !self.options.include_usage) {
            return None;
        }
        // A borrowed string lies inside `data`: where it is is what to replace.
        let span = view.model_span(data.as_bytes())?;
        self.capture(|step, cap| capture::chunk_view(step, view, cap));
        let mut out = String::with_capacity(data.len() + self.model_json.len());
        out.push_str(data.get(..span.start)?);
        out.push_str(&self.model_json);
        out.push_str(data.get(span.end..)?);
        Some(Event::default().data(out))
    }

    /// Adds a chunk to the step's record with `add`, marking the first token's time.
    fn capture(&mut self, add: impl FnOnce(&mut StepRecord, usize) -> bool) {
        let elapsed = millis(self.called_at.elapsed());
        if let Some(step) = self.session.as_mut().and_then(|s| s.step(self.step)) {
            if add(step, self.options.max_answer_bytes) && step.ttft_ms.is_none() {
                step.ttft_ms = Some(elapsed);
            }
            self.saw_finish |= step.finish_reason.is_some();
        }
    }

    /// Sends an in-band error; `[DONE]` follows on the next poll.
    fn fail(&mut self, message: String, code: &str) -> Event {
        let envelope = serde_json::json!({
            "error": {"message": message, "type": "upstream_error", "param": null, "code": code}
        });
        self.error = Some(message);
        self.phase = Phase::Ending;
        json_event(&envelope)
    }

    /// Sends `[DONE]` and finishes the session; the body closes after it.
    fn done(&mut self) -> Event {
        self.phase = Phase::Done;
        let duration = millis(self.called_at.elapsed());
        if let Some(mut session) = self.session.take() {
            if let Some(step) = session.step(self.step) {
                step.duration_ms = duration;
                step.error.clone_from(&self.error);
            }
            let outcome = match self.error {
                None => Outcome::Ok,
                Some(_) => Outcome::Error,
            };
            session.finish(outcome, 200, self.error.clone());
        }
        Event::default().data("[DONE]")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The client left mid-stream: the session's own guard records the disconnect;
        // note how long the backend call ran and what it had sent by then.
        let duration = millis(self.called_at.elapsed());
        if let Some(step) = self.session.as_mut().and_then(|s| s.step(self.step)) {
            step.duration_ms = duration;
        }
    }
}

/// `text` escaped for JSON, without the quotes around it.
pub(super) fn json_string_body(text: &str) -> String {
    let quoted = Value::from(text).to_string();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string()
}

fn json_event(value: &Value) -> Event {
    Event::default().data(value.to_string())
}
