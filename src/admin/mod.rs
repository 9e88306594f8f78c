//! The admin HTTP API: health, readiness, metrics, status, explain, server state and load,
//! reload. Reading endpoints are open; changing ones need the bearer token.

pub mod metrics;
