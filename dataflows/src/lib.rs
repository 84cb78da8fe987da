//! edgeflow's dataflow stages: pure logic on timely and differential dataflow, no I/O.
//!
//! | file            | what it owns                                                          |
//! |-----------------|-----------------------------------------------------------------------|
//! | `record.rs`     | the types stages hand each other: clean records, rejects, origins      |
//! | `parse/`        | nginx `log_format` compiler, shipper envelopes, field decoding          |
//! | `clean.rs`      | UTC times, client IP by trusted proxies, domains, validation            |
//! | `window.rs`     | time policy: watermarks, stamps, windows, retirement, idleness          |
//! | `time_guard.rs` | future lines and time jumps held until confirmed, before the clock      |
//! | `domain_gate.rs`| bounded cardinality: known domains, new domains per minute per partition |
//! | `key.rs`        | compact records (`Hit`, `ClientHit`), domain keys, output cells         |
//! | `frontier.rs`   | the operator shape of every aggregation stage: fold, emit on frontier   |
//! | `panes.rs`      | the per-domain window engine: minute panes, incremental window stats    |
//! | `topk.rs`       | exact incremental top-k for counts that only grow                       |
//! | `abuse.rs`      | top clients per minute across domains: per-worker ranks, merged         |
//! | `aggregate.rs`  | aggregate values: totals, rankings, latency histograms and percentiles  |
//! | `alert.rs`      | traffic alerts per domain from the closed minute series                  |
//! | `dedup.rs`      | shipper re-sends recognised by origin within a horizon                  |
//! | `ingest.rs`     | a worker's front: parse → clean → stamp → key, and rejects           |
//! | `progress.rs`   | per-partition replay points for exactly-once restarts                   |
//! | `pipeline.rs`   | `build`: the dataflow after the sources, one function per stage         |
//! | `changes.rs`    | differential updates → absolute values per closed epoch                 |
//! | `output.rs`     | `close_epochs`: one batch of table changes per closed epoch, on worker 0; alerts |

pub mod record;
pub mod parse;
pub mod clean;
pub mod window;
pub mod time_guard;
pub mod domain_gate;
pub mod key;
pub mod frontier;
pub mod topk;
pub mod panes;
pub mod abuse;
pub mod aggregate;
pub mod dedup;
pub mod ingest;
pub mod progress;
pub mod pipeline;
pub mod changes;
pub mod output;
pub mod alert;
