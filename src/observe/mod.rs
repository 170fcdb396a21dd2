//! What the router shows about itself: Prometheus metrics and live counters.

pub mod live;
pub mod metrics;
