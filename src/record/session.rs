//! `Session`, the drop guard of a request's session record: whatever way a request ends
//! (answered, failed, or dropped when the client left), exactly one record reaches the
//! session-log writer and the observers.

use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::decision::Decision;
use super::log::{Outcome, SCHEMA_VERSION, SessionRecord, StepRecord};
use super::sink::{SessionSink, WriterMsg};
use crate::names::{BackendId, Step};

/// Longest a request waits for a place in the session writer's queue.
const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Most bytes of a refused request's body kept in its record.
const REJECTED_BODY_BYTES: usize = 64 * 1024;

/// Longest `user_query` kept in the record (the full conversation is in `client_messages`).
const USER_QUERY_CHARS: usize = 500;

/// A request's record in progress. Dropping it unfinished (the client left and the
/// request future or stream was dropped) records `client_disconnected`.
#[derive(Debug)]
pub struct Session {
    record: Option<SessionRecord>,
    started: Instant,
    sink: SessionSink,
    /// Places the request holds until it ends (for a stream, when the stream ends): its
    /// place under `server.max_concurrent_requests`, its key's stream slot.
    held: Vec<Box<dyn std::any::Any + Send + Sync>>,
    /// The record's reserved place in the writer's queue (see `reserve_slot`).
    slot: Option<mpsc::OwnedPermit<WriterMsg>>,
    /// The request's span: a stream ends, or is dropped, outside it, and the final log
    /// line must still carry the request id.
    span: tracing::Span,
    /// Whether the record keeps the conversations (the client's, and each step's): only
    /// a session log reads them, so with logs off they are not copied.
    content: bool,
}

/// What is known about a request when it starts.
#[derive(Debug)]
pub struct SessionStart {
    pub id: String,
    pub client_ip: String,
    pub user_agent: Option<String>,
    /// Backends whose every endpoint is down as the request arrives.
    pub backends_down: Vec<BackendId>,
}

impl Session {
    /// Starts a record now.
    pub fn start(start: SessionStart, sink: SessionSink) -> Self {
        let now = chrono::Utc::now();
        let record = SessionRecord {
            started_at: now,
            schema_version: SCHEMA_VERSION,
            id: start.id,
            timestamp: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            client_ip: start.client_ip,
            user_agent: start.user_agent,
            client_key: None,
            user_query: String::new(),
            client_messages: Value::Null,
            rejected_body: None,
            images: None,
            stream: false,
            decision: Decision::default(),
            backends_down: start.backends_down,
            steps: Vec::new(),
            total_ms: 0,
            http_status: 0,
            outcome: Outcome::Ok,
            error: None,
            cut_to_fit: None,
        };
        sink.started();
        Session {
            content: sink.writes_logs(),
            record: Some(record),
            started: Instant::now(),
            sink,
            held: Vec::new(),
            slot: None,
            span: tracing::Span::current(),
        }
    }

    /// Reserves the record's place in the writer's queue now, so that finishing (or
    /// dropping) the session later hands it over without waiting and without a task.
    /// A request waits `WRITER_WAIT` at most: past it, it goes on and its record takes
    /// its chances when it ends (see `SessionSink::submit`).
    pub async fn reserve_slot(&mut self) {
        self.slot = self.sink.reserve(WRITER_WAIT).await;
    }

    /// Keeps `place` (a concurrency permit, a stream slot) until the session ends.
    pub fn hold(&mut self, place: impl std::any::Any + Send + Sync) {
        self.held.push(Box::new(place));
    }

    /// Milliseconds since the request started.
    pub fn elapsed_ms(&self) -> u64 {
        millis(self.started.elapsed())
    }

    /// The request's id.
    pub fn id(&self) -> &str {
        self.record.as_ref().map_or("", |r| r.id.as_str())
    }

    /// The record, for filling in as the request runs.
    pub fn record(&mut self) -> Option<&mut SessionRecord> {
        self.record.as_mut()
    }

    /// The routing decision in the record, for filling in as the request runs.
    pub fn decision(&mut self) -> Option<&mut Decision> {
        self.record.as_mut().map(|r| &mut r.decision)
    }

    /// Notes the validated request: its conversation and the last user message.
    pub fn set_request(&mut self, messages: &[Value], user_query: &str, stream: bool) {
        let content = self.content;
        if let Some(record) = self.record() {
            if content {
                record.client_messages = Value::Array(messages.to_vec());
            }
            let images = crate::openai::images(messages);
            record.images = (images.count > 0).then_some(images);
            record.user_query = cut(user_query, USER_QUERY_CHARS);
            record.stream = stream;
        }
    }

    /// Notes the body of a request refused before it was understood (not JSON, not a
    /// chat), its first `REJECTED_BODY_BYTES` as text.
    pub fn set_rejected_body(&mut self, bytes: &[u8]) {
        if let Some(record) = self.record() {
            let head = &bytes[..bytes.len().min(REJECTED_BODY_BYTES)];
            record.rejected_body = Some(String::from_utf8_lossy(head).into_owned());
        }
    }

    /// Adds an upstream call and returns its index.
    pub fn push_step(&mut self, step: StepRecord) -> usize {
        match self.record() {
            Some(record) => {
                record.steps.push(step);
                record.steps.len() - 1
            }
            None => 0,
        }
    }

    /// Records a call about to be made to `provider` with `body` as a new step (see
    /// `StepRecord::sending`) and returns its index.
    pub fn push_sending(
        &mut self,
        step: Step,
        provider: &BackendId,
        model: &str,
        body: &Map<String, Value>,
        conversation: &str,
    ) -> usize {
        let record = StepRecord::sending(step, provider, model, body, conversation, self.content);
        self.push_step(record)
    }

    /// Whether the record keeps conversations (a session log will be written).
    pub fn keeps_content(&self) -> bool {
        self.content
    }

    /// The step at `index`, for the relay to fill in.
    pub fn step(&mut self, index: usize) -> Option<&mut StepRecord> {
        self.record().and_then(|r| r.steps.get_mut(index))
    }

    /// Ends the record with `outcome` and sends it to the writer.
    pub fn finish(mut self, outcome: Outcome, http_status: u16, error: Option<String>) {
        self.close(outcome, http_status, error);
    }

    fn close(&mut self, outcome: Outcome, http_status: u16, error: Option<String>) {
        let total_ms = self.elapsed_ms();
        let Some(mut record) = self.record.take() else {
            return;
        };
        record.total_ms = total_ms;
        record.outcome = outcome;
        if record.http_status == 0 {
            record.http_status = http_status;
        }
        record.error = error;
        for step in &mut record.steps {
            super::cost::estimate_usage(step);
        }
        let _in_request = self.span.enter();
        // The request's one log line: a warning when it ended in an error.
        macro_rules! finished {
            ($level:ident) => {
                tracing::$level!(
                    outcome = ?record.outcome,
                    route = record.decision.route.as_deref().unwrap_or("-"),
                    status = record.http_status,
                    total_ms,
                    ttft_ms = record.steps.last().and_then(|s| s.ttft_ms),
                    error = record.error.as_deref(),
                    "session finished"
                )
            };
        }
        if record.outcome == Outcome::Error {
            finished!(warn);
        } else {
            finished!(info);
        }
        self.sink.submit(record, self.slot.take());
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.record.is_some() {
            // 499: nginx's "client closed request", the usual mark for this case.
            self.close(Outcome::ClientDisconnected, 499, None);
        }
    }
}

/// A `Duration` in whole milliseconds.
pub fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `text` cut to at most `max` characters, on a character boundary.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_string(),
        None => text.to_string(),
    }
}

/// A new session id: 8 lowercase hex characters.
pub fn new_id() -> String {
    format!("{:08x}", fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(sink: SessionSink) -> Session {
        Session::start(
            SessionStart {
                id: "abcd1234".into(),
                client_ip: "127.0.0.1".into(),
                user_agent: None,
                backends_down: Vec::new(),
            },
            sink,
        )
    }

    async fn recv(rx: &mut mpsc::Receiver<WriterMsg>) -> SessionRecord {
        match rx.recv().await {
            Some(WriterMsg::Record(record)) => *record,
            other => panic!("expected a record, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn dropping_an_unfinished_session_records_a_disconnect() {
        let (tx, mut rx) = mpsc::channel(4);
        drop(start(SessionSink::new(tx)));
        let record = recv(&mut rx).await;
        assert_eq!(record.outcome, Outcome::ClientDisconnected);
        assert_eq!(record.http_status, 499);
    }

    #[tokio::test]
    async fn finishing_sends_exactly_one_record() {
        let (tx, mut rx) = mpsc::channel(4);
        let session = start(SessionSink::new(tx));
        session.finish(Outcome::Ok, 200, None);
        let record = recv(&mut rx).await;
        assert_eq!(record.outcome, Outcome::Ok);
        assert!(rx.try_recv().is_err(), "a second record was sent");
    }

    #[tokio::test]
    async fn a_busy_writer_makes_new_requests_wait_instead_of_filling_memory() {
        let (tx, mut rx) = mpsc::channel(1);
        let sink = SessionSink::new(tx);
        let mut first = start(sink.clone());
        first.reserve_slot().await;
        let mut second = start(sink.clone());
        // The only place is taken: the second request waits for the writer.
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), second.reserve_slot()).await;
        assert!(waited.is_err(), "the second request did not wait");
        first.finish(Outcome::Ok, 200, None);
        assert_eq!(recv(&mut rx).await.outcome, Outcome::Ok);
        second.reserve_slot().await;
        drop(second);
        assert_eq!(recv(&mut rx).await.outcome, Outcome::ClientDisconnected);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_writer_delays_a_request_by_the_wait_at_most() {
        let (tx, _rx) = mpsc::channel(1);
        let sink = SessionSink::new(tx);
        let mut first = start(sink.clone());
        first.reserve_slot().await;
        let mut second = start(sink.clone());
        let started = tokio::time::Instant::now();
        second.reserve_slot().await;
        assert_eq!(started.elapsed(), WRITER_WAIT);
        assert!(second.slot.is_none());
    }

    /// What an observer saw of the last record.
    #[derive(Debug, Default)]
    struct Seen(std::sync::Mutex<Option<SessionRecord>>);

    impl crate::record::sink::Observer for Seen {
        fn finished(&self, record: &SessionRecord) {
            *self.0.lock().unwrap() = Some(record.clone());
        }
    }

    #[tokio::test]
    async fn with_logs_off_no_conversation_is_copied_but_the_usage_estimate_still_counts_it() {
        let seen = std::sync::Arc::new(Seen::default());
        let messages = serde_json::json!([{"role": "user", "content": "x".repeat(40)}]);
        let body = serde_json::json!({"messages": messages, "temperature": 0.5});
        let run = |sink: SessionSink| {
            let mut session = start(sink);
            session.set_request(messages.as_array().unwrap(), "x", false);
            let step = session.push_sending(
                Step::Answer,
                &BackendId::from("xai"),
                "grok",
                body.as_object().unwrap(),
                "messages",
            );
            let record = session.step(step).unwrap();
            record.status = Some(200);
            record.response_content = "y".repeat(8);
            session.finish(Outcome::Ok, 200, None);
        };
        run(SessionSink::disabled().observed_by(vec![seen.clone()]));
        let off = seen.0.lock().unwrap().take().unwrap();
        assert_eq!(off.client_messages, Value::Null);
        assert_eq!(off.steps[0].messages_sent, Value::Null);
        assert_eq!(off.steps[0].params, Value::Null);
        let usage = off.steps[0].usage.clone().unwrap();
        assert_eq!(usage["prompt_tokens"], 10, "40 characters sent");

        let (tx, mut rx) = mpsc::channel(4);
        run(SessionSink::new(tx));
        let on = recv(&mut rx).await;
        assert_eq!(on.client_messages, messages);
        assert_eq!(on.steps[0].messages_sent, messages);
        assert_eq!(on.steps[0].params, serde_json::json!({"temperature": 0.5}));
        assert_eq!(
            on.steps[0].usage,
            Some(usage),
            "the same estimate either way"
        );
    }

    #[derive(Debug, Default)]
    struct Dropped(std::sync::atomic::AtomicUsize);

    impl crate::record::sink::Observer for Dropped {
        fn finished(&self, _: &SessionRecord) {}
        fn dropped(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn unreserved_records_take_at_most_half_the_queue_then_are_dropped_and_counted() {
        let (tx, mut rx) = mpsc::channel(8);
        let dropped = std::sync::Arc::new(Dropped::default());
        let sink = SessionSink::new(tx).observed_by(vec![dropped.clone()]);
        // A flood of refused requests (no reserved place) while the writer is behind.
        for _ in 0..20 {
            start(sink.clone()).finish(Outcome::Error, 503, None);
        }
        assert_eq!(dropped.0.load(std::sync::atomic::Ordering::Relaxed), 16);
        // The other half is still there, at once, for admitted requests.
        let mut admitted = Vec::new();
        for _ in 0..4 {
            let mut session = start(sink.clone());
            let wait = std::time::Duration::from_millis(100);
            tokio::time::timeout(wait, session.reserve_slot())
                .await
                .expect("an admitted request waited behind refused ones");
            assert!(session.slot.is_some());
            admitted.push(session);
        }
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, 4);
    }

    #[test]
    fn ids_are_eight_hex_chars_and_cut_respects_chars() {
        let id = new_id();
        assert_eq!(id.len(), 8);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(cut("héllo", 2), "hé");
        assert_eq!(cut("hi", 10), "hi");
    }
}
