//! edgeflow: real-time access-log analytics and CDN billing on timely and differential
//! dataflow. The pure stages live in the `dataflows` crate; this crate holds the I/O around
//! them.
//!
//! | module       | what it owns                                                         |
//! |--------------|----------------------------------------------------------------------|
//! | `billing`    | `edgeflow billing`: 95th-percentile bills from the 5-minute samples  |
//! | `config`     | TOML settings, environment overrides, validation                     |
//! | `kafka`      | every Kafka client configuration, with its reasons                   |
//! | `source`     | Kafka and file readers, and the timely source operator that drives them |
//! | `sink`       | the MySQL writer, the schema and `migrate`                           |
//! | `job`        | `edgeflow run`: the timely cluster, source → pipeline → sink          |
//! | `gen`        | `edgeflow gen`: realistic, deterministic CDN traffic                 |
//! | `telemetry`  | logging and metrics                                                  |

pub mod billing;
pub mod config;
pub mod dashboard;
pub mod gen;
pub mod job;
pub mod kafka;
pub mod notify;
pub mod sink;
pub mod source;
pub mod telemetry;
