//! What the router shows about itself: Prometheus metrics, live counters, and the
//! recent requests the dashboard's overview draws.

pub mod live;
pub mod metrics;
pub mod recent;
