//! The one reading of a failed backend call that retries, failover and health all use:
//! whether trying again could help, whether another backend may answer instead, and
//! whether the endpoint is unwell.

use crate::error::Error;

/// What a failure means for what happens next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The same backend may be tried again (another endpoint, or after a backoff).
    pub retry: bool,
    /// Another route's backend may answer instead (before anything reached the client).
    pub failover: bool,
    /// The endpoint counts a failure towards being ejected.
    pub unhealthy: bool,
}

/// How a failed call is read:
///
/// | failure | retry | failover | unhealthy |
/// |---|---|---|---|
/// | unreachable (refused, DNS, reset; silent and ejected while the call waited) | yes | yes | yes |
/// | silent past its timeout | no: the deadline is spent | yes | yes |
/// | 429 | yes | yes | no: busy, not broken |
/// | 5xx | yes | yes | yes |
/// | a 4xx that is the router's fault (rejected key, 410) | no | yes | yes |
/// | another 4xx: the request itself | no | no | no |
/// | not the protocol (not JSON, not SSE) | no | yes | no |
/// | no healthy endpoint (the whole pool ejected) | no | yes: fail fast | no |
/// | anything else (shutdown, a refused client…) | no | no | no |
///
/// A silent endpoint is not left to the caller's clock: a call still waiting on it when
/// the pool ejects it is given up as unreachable and tried elsewhere (`abandon`), so a
/// timeout here means no healthy endpoint was there to take over.
pub fn judge(error: &Error) -> Verdict {
    let verdict = |retry, failover, unhealthy| Verdict {
        retry,
        failover,
        unhealthy,
    };
    match error {
        Error::UpstreamUnreachable { .. } => verdict(true, true, true),
        Error::UpstreamTimeout { .. } => verdict(false, true, true),
        Error::UpstreamProtocol { .. } => verdict(false, true, false),
        Error::UpstreamStatus { error, .. } => {
            // The backend's own status decides retries: a rejected key answered 400 is a
            // 502 for the client, but trying it again cannot help.
            let sent = error.backend_status;
            let busy = sent.as_u16() == 429;
            let routers_fault = error.status != sent;
            verdict(
                busy || sent.is_server_error(),
                busy || error.status.is_server_error(),
                sent.is_server_error() || routers_fault,
            )
        }
        Error::NoHealthyEndpoint { .. } => verdict(false, true, false),
        Error::InvalidJson(_)
        | Error::InvalidRequest { .. }
        | Error::BodyTooLarge { .. }
        | Error::BodyUnreadable(_)
        | Error::BodyTimeout { .. }
        | Error::HeadersTooLarge { .. }
        | Error::TooManyHeaders { .. }
        | Error::NotFound { .. }
        | Error::MethodNotAllowed { .. }
        | Error::KeyMissing { .. }
        | Error::ImagesUnsupported { .. }
        | Error::BudgetSpent { .. }
        | Error::Unauthorized { .. }
        | Error::Forbidden { .. }
        | Error::AdminKeyRequired { .. }
        | Error::TooManyFeeds { .. }
        | Error::SessionsUnreadable { .. }
        | Error::Overloaded { .. }
        | Error::RateLimited { .. }
        | Error::TooManyStreams { .. }
        | Error::ShuttingDown => verdict(false, false, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::UpstreamError;
    use axum::http::StatusCode;

    fn status(code: u16, body: &str) -> Error {
        let status = StatusCode::from_u16(code).unwrap();
        Error::UpstreamStatus {
            backend: "xai".into(),
            error: Box::new(UpstreamError::parse("xai", status, body.as_bytes())),
        }
    }

    #[test]
    fn each_failure_is_read_once() {
        let refused = Error::UpstreamUnreachable {
            backend: "primary".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(
            judge(&refused),
            Verdict {
                retry: true,
                failover: true,
                unhealthy: true
            }
        );
        let silent = Error::UpstreamTimeout {
            backend: "primary".into(),
            secs: 30,
        };
        assert_eq!(
            judge(&silent),
            Verdict {
                retry: false,
                failover: true,
                unhealthy: true
            }
        );
        assert_eq!(
            judge(&status(429, "{}")),
            Verdict {
                retry: true,
                failover: true,
                unhealthy: false
            }
        );
        assert_eq!(
            judge(&status(503, "{}")),
            Verdict {
                retry: true,
                failover: true,
                unhealthy: true
            }
        );
        let bad_key = status(400, r#"{"code":"x","error":"Incorrect API key provided"}"#);
        assert_eq!(
            judge(&bad_key),
            Verdict {
                retry: false,
                failover: true,
                unhealthy: true
            }
        );
        assert_eq!(
            judge(&status(400, r#"{"error":{"message":"context too long"}}"#)),
            Verdict {
                retry: false,
                failover: false,
                unhealthy: false
            }
        );
    }
}
