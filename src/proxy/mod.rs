//! Runs a routing decision: the plan, the calls with failover, request shaping, the
//! search hop and the SSE relay to the client.

pub mod execute;
pub mod pipeline;
pub mod relay;
pub mod search;
pub mod shape;
