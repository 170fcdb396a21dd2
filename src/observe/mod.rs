//! What the router shows about itself: Prometheus metrics (their `labels`, the cloud
//! `spend` gauges) and live counters.

mod labels;
pub mod live;
pub mod metrics;
mod spend;

pub use labels::EndpointReading;
