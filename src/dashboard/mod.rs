//! `edgeflow serve`: the monitoring dashboard over MySQL (read-only user).

pub mod config;
