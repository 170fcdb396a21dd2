//! Limits on what a client sends: the size of its headers and the size and arrival time
//! of its body. A client that is too big or too slow gets an OpenAI-shaped error, and
//! holds no more of the router than the limits allow.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures_util::StreamExt;

use crate::edge::state::AppState;
use crate::error::Error;

/// The middleware refusing requests whose headers exceed `server.max_header_bytes` or
/// number more than `server.max_headers`, in OpenAI's envelope. (hyper cuts off far
/// larger or more numerous ones before this runs; see `app::accept`.)
pub async fn check_headers(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.config.server.max_header_bytes;
    if header_bytes(request.headers()) > limit {
        return Error::HeadersTooLarge { limit }.into_response();
    }
    let most = state.config.server.max_headers;
    // `len` counts every value, so a name repeated a thousand times counts a thousand.
    if request.headers().len() > most {
        return Error::TooManyHeaders { limit: most }.into_response();
    }
    next.run(request).await
}

/// The headers' size as sent: names, values and the `: ` and CRLF around each.
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// Reads the whole body, refusing more than `limit` bytes or more than `timeout` for all
/// of it. A declared `Content-Length` over the limit is refused before reading.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Error::BodyTooLarge { limit });
    }
    tokio::time::timeout(timeout, collect(body, limit))
        .await
        .unwrap_or(Err(Error::BodyTimeout {
            secs: timeout.as_secs(),
        }))
}

async fn collect(body: Body, limit: usize) -> Result<Bytes, Error> {
    let mut stream = body.into_data_stream();
    // Most bodies arrive as one chunk: keep it as it is, without a copy.
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut length = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::BodyUnreadable(e.to_string()))?;
        length = length.saturating_add(chunk.len());
        if length > limit {
            return Err(Error::BodyTooLarge { limit });
        }
        if first.is_none() && joined.is_empty() {
            first = Some(chunk);
            continue;
        }
        if let Some(earlier) = first.take() {
            joined.extend_from_slice(&earlier);
        }
        joined.extend_from_slice(&chunk);
    }
    Ok(first.unwrap_or_else(|| joined.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static str]) -> Body {
        let parts: Vec<Result<Bytes, std::io::Error>> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect();
        Body::from_stream(futures_util::stream::iter(parts))
    }

    #[tokio::test]
    async fn chunks_are_joined_in_order_and_the_limit_counts_all_of_them() {
        let long = Duration::from_secs(5);
        let none = HeaderMap::new();
        let body = read_body(&none, chunks(&["ab", "", "cd", "e"]), 5, long).await;
        assert_eq!(body.unwrap(), "abcde");
        let one = read_body(&none, chunks(&["abc"]), 5, long).await;
        assert_eq!(one.unwrap(), "abc");
        let over = read_body(&none, chunks(&["abc", "def"]), 5, long).await;
        assert!(matches!(over, Err(Error::BodyTooLarge { limit: 5 })));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "6".parse().unwrap());
        let pending =
            Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>());
        let result = read_body(&headers, pending, 5, Duration::from_secs(60)).await;
        assert!(matches!(result, Err(Error::BodyTooLarge { .. })));
    }

    #[test]
    fn header_bytes_count_names_values_and_separators() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", "12345".parse().unwrap());
        assert_eq!(header_bytes(&headers), 3 + 5 + 4);
    }
}
