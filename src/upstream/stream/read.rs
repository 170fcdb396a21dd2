//! Reading a backend's stream as bytes, before the SSE parser: ends it when the backend
//! goes silent, at the first byte that cannot be text, and when one event grows past its
//! bound (the parser would hold all of it in memory, waiting for its end).

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// Why reading the backend's stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No byte arrived within the idle timeout.
    #[error("sent nothing for {0} s")]
    Idle(u64),
    /// The backend sent bytes that are not UTF-8, so not an event stream.
    #[error("sent bytes that are not UTF-8 text")]
    NotText,
    /// One event went on past this many bytes without ending.
    #[error("sent an event larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed.
    #[error("connection failed mid-stream")]
    Transport(#[from] reqwest::Error),
}

/// Where the stream is within its current event.
#[derive(Default)]
struct Position {
    /// The start of a UTF-8 character the previous chunk ended with.
    partial: Vec<u8>,
    /// Bytes since the last blank line (the end of an event).
    in_event: usize,
    /// Characters on the current line, `\r` not counted.
    on_line: usize,
}

/// The backend's bytes, ended with `ReadError::Idle` when it goes silent for `idle` (per
/// chunk, not a total: a long answer that keeps flowing is never cut), with
/// `ReadError::NotText` at the first byte that is not UTF-8, and with
/// `ReadError::TooLarge` when one event passes `max_event` bytes.
pub(super) fn guarded(
    bytes: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    idle: Duration,
    max_event: usize,
) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + 'static {
    let start = (Box::pin(bytes), Position::default());
    futures_util::stream::unfold(Some(start), move |state| async move {
        let (mut bytes, mut at) = state?;
        match tokio::time::timeout(idle, bytes.next()).await {
            Ok(Some(Ok(chunk))) if !continues_text(&mut at.partial, &chunk) => {
                Some((Err(ReadError::NotText), None))
            }
            Ok(Some(Ok(chunk))) if !at.advance(&chunk, max_event) => {
                Some((Err(ReadError::TooLarge(max_event)), None))
            }
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some((bytes, at)))),
            Ok(Some(Err(e))) => Some((Err(ReadError::Transport(e)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(ReadError::Idle(idle.as_secs())), None)),
        }
    })
}

impl Position {
    /// Moves past `chunk`; false when the current event has grown past `max_event`.
    fn advance(&mut self, chunk: &[u8], max_event: usize) -> bool {
        for &byte in chunk {
            self.in_event += 1;
            match byte {
                // An empty line ends the event (`\n\n` or `\r\n\r\n`).
                b'\n' if self.on_line == 0 => self.in_event = 0,
                b'\n' => self.on_line = 0,
                b'\r' => {}
                _ => self.on_line += 1,
            }
        }
        self.in_event <= max_event
    }
}

/// Whether `chunk` is UTF-8 text, given the start of a character the previous chunk
/// ended with (`partial`, kept up to date for the next chunk). Checked here because
/// eventsource-stream holds every byte after an invalid one, waiting for the rest of a
/// character that never comes: the client would get nothing more while that buffer grew
/// for as long as the backend kept sending.
fn continues_text(partial: &mut Vec<u8>, chunk: &[u8]) -> bool {
    let joined;
    let bytes = if partial.is_empty() {
        chunk
    } else {
        joined = [partial.as_slice(), chunk].concat();
        &joined
    };
    match std::str::from_utf8(bytes) {
        Ok(_) => {
            partial.clear();
            true
        }
        // Only the last character is cut short: it continues in the next chunk.
        Err(e) if e.error_len().is_none() => {
            *partial = bytes[e.valid_up_to()..].to_vec();
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_may_be_as_large_as_the_bound_and_no_larger() {
        let mut at = Position::default();
        assert!(at.advance(b"data: 12345\n\ndata: 1", 14));
        assert!(
            at.advance(b"23\r\n\r\n", 14),
            "an event ended: the count starts again"
        );
        assert!(at.advance(b"data: 1234567", 14));
        assert!(!at.advance(b"89", 14), "15 bytes without an end");
        let mut lines = Position::default();
        assert!(
            !lines.advance(b"data: a\ndata: b\ndata: c\n", 20),
            "many lines, one event"
        );
    }

    #[test]
    fn a_character_split_across_chunks_is_text_and_junk_is_not() {
        let mut partial = Vec::new();
        let e_acute = "é".as_bytes();
        assert!(continues_text(&mut partial, &[b'a', e_acute[0]]));
        assert_eq!(partial, [e_acute[0]]);
        assert!(continues_text(&mut partial, &[e_acute[1], b'b']));
        assert!(partial.is_empty());
        assert!(!continues_text(&mut partial, &[b'a', 0xff, b'b']));
    }
}
