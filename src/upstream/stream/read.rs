//! Reading a backend's stream as bytes, before the SSE parser: ends it when the backend
//! goes silent, and at the first byte that cannot be text.

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
    /// The connection failed.
    #[error("connection failed mid-stream")]
    Transport(#[from] reqwest::Error),
}

/// The backend's bytes, ended with `ReadError::Idle` when it goes silent for `idle` (per
/// chunk, not a total: a long answer that keeps flowing is never cut) and with
/// `ReadError::NotText` at the first byte that is not UTF-8.
pub(super) fn guarded(
    bytes: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + 'static {
    let start = (Box::pin(bytes), Vec::new());
    futures_util::stream::unfold(Some(start), move |state| async move {
        let (mut bytes, mut partial) = state?;
        match tokio::time::timeout(idle, bytes.next()).await {
            Ok(Some(Ok(chunk))) if !continues_text(&mut partial, &chunk) => {
                Some((Err(ReadError::NotText), None))
            }
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some((bytes, partial)))),
            Ok(Some(Err(e))) => Some((Err(ReadError::Transport(e)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(ReadError::Idle(idle.as_secs())), None)),
        }
    })
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
