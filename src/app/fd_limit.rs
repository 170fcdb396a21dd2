//! The open-file limit. Every stream holds at least two descriptors (the client's
//! connection and the backend's), and the usual default soft limit of 1,024 (systemd
//! services, most shells) would stop the router near 500 streams with accept errors,
//! below `server.max_concurrent_requests`' default. So the soft limit is raised to the
//! hard one at start-up, as nginx's `worker_rlimit_nofile` and Go's runtime do.

/// Raises the soft open-file limit to the hard limit, and warns when even that is too
/// low for `max_concurrent_requests`.
pub fn raise(max_concurrent_requests: usize) {
    let needed = u64::try_from(max_concurrent_requests)
        .unwrap_or(u64::MAX)
        .saturating_mul(2)
        .saturating_add(64);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < needed => tracing::warn!(
            limit,
            needed,
            "the open-file limit is too low for server.max_concurrent_requests: raise the hard limit (ulimit -Hn, systemd's LimitNOFILE=, Docker's --ulimit nofile=)"
        ),
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}
