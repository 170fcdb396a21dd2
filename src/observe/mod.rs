//! What the router shows about itself: Prometheus metrics (their `labels`, the cloud
//! `spend` gauges), live counters, and the recent requests the dashboard's overview draws.

mod labels;
pub mod live;
pub mod metrics;
pub mod recent;
mod spend;

pub use labels::EndpointReading;
