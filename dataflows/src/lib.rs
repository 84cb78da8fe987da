//! edgeflow's dataflow stages: pure logic on timely and differential dataflow, no I/O.
//!
//! | file            | what it owns                                                          |
//! |-----------------|-----------------------------------------------------------------------|
//! | `record.rs`     | the types stages hand each other: clean records, rejects, origins      |
//! | `parse/`        | nginx `log_format` compiler, Filebeat envelopes, field decoding         |
//! | `clean.rs`      | UTC times, client IP by trusted proxies, domains, validation            |
//! | `window.rs`     | time policy: watermarks, stamps, windows, retirement, idleness          |
//! | `key.rs`        | which (domain, window) cells a record updates                           |
//! | `aggregate.rs`  | aggregates as difference types; the per-worker local combiner           |
//! | `ingest.rs`     | a worker's front: parse → clean → stamp → key → combine, and rejects    |
//! | `pipeline.rs`   | `build`: the dataflow after the sources, one function per stage         |
//! | `changes.rs`    | differential updates → absolute values per closed epoch, for sinks      |

pub mod record;
pub mod parse;
pub mod clean;
pub mod window;
pub mod key;
pub mod aggregate;
pub mod ingest;
pub mod pipeline;
pub mod changes;
pub mod alert;
