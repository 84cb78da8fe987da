//! MySQL writer: one transaction per batch of closed epochs, multi-row parameterised upserts
//! of absolute values, deletes of vanished keys and the batch's rejects. Retries forever
//! with capped exponential back-off: while MySQL is down the writing worker blocks, which
//! holds the dataflow's frontier back instead of dropping or double-applying an epoch.

use std::time::{Duration, Instant};

use dataflows::aggregate::Traffic;
use dataflows::changes::Changes;
use dataflows::ingest::RejectRow;
use dataflows::key::DomainWindow;
use dataflows::window::Time;
use mysql_async::prelude::Queryable;
use mysql_async::{Pool, TxOpts, Value};
use tracing::{debug, warn};

use crate::config::SinkConfig;
use crate::sink::schema::{connection_opts, SchemaError};
use crate::telemetry::METRICS;

/// Everything one transaction writes.
#[derive(Debug, Default)]
pub struct EpochBatch {
    /// Every epoch before this time is complete and included.
    pub upto: Option<Time>,
    pub domain_minutes: Changes<DomainWindow, Traffic>,
    pub rejects: Vec<(RejectRow, Time)>,
}

impl EpochBatch {
    pub fn rows(&self) -> usize {
        self.domain_minutes.upserts.len() + self.domain_minutes.deletes.len() + self.rejects.len()
    }
}

pub struct MysqlWriter {
    runtime: tokio::runtime::Runtime,
    pool: Pool,
    /// `kafka:<topic>` or `file:<path>`: the rejects table's source column.
    source: String,
    config: SinkConfig,
}

impl MysqlWriter {
    pub fn new(url: &str, source: String, config: SinkConfig) -> Result<Self, SchemaError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let pool = Pool::new(connection_opts(url)?);
        Ok(MysqlWriter { runtime, pool, source, config })
    }

    /// Commits `batch`, retrying until it succeeds.
    pub fn commit(&self, batch: &EpochBatch) {
        let started = Instant::now();
        let mut delay = Duration::from_millis(self.config.retry_initial_ms);
        let mut attempt = 1u32;
        loop {
            match self.runtime.block_on(self.try_commit(batch)) {
                Ok(()) => break,
                Err(err) => {
                    warn!(error = %err, attempt, retry_in_ms = delay.as_millis() as u64, rows = batch.rows(), "mysql commit failed; retrying");
                    METRICS.commit_retries.inc();
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(self.config.retry_max_ms));
                    attempt += 1;
                }
            }
        }
        METRICS.commits.inc();
        METRICS.rows_written.add(batch.rows() as u64);
        METRICS.commit_latency_ms_sum.add(started.elapsed().as_millis() as u64);
        debug!(upto = ?batch.upto, rows = batch.rows(), ms = started.elapsed().as_millis() as u64, "epoch batch committed");
    }

    async fn try_commit(&self, batch: &EpochBatch) -> Result<(), mysql_async::Error> {
        let mut tx = self.pool.start_transaction(TxOpts::default()).await?;
        let chunk = self.config.rows_per_statement;
        for rows in batch.domain_minutes.upserts.chunks(chunk) {
            let mut params = Vec::with_capacity(rows.len() * 9);
            for (key, traffic) in rows {
                params.push(Value::from(key.domain.as_str()));
                params.push(Value::from(key.window.start));
                params.push(Value::from(non_negative(traffic.requests)));
                params.push(Value::from(non_negative(traffic.bytes)));
                for count in traffic.status_class {
                    params.push(Value::from(non_negative(count)));
                }
            }
            tx.exec_drop(upsert_domain_minute_sql(rows.len()), params).await?;
        }
        for keys in batch.domain_minutes.deletes.chunks(chunk) {
            let mut params = Vec::with_capacity(keys.len() * 2);
            for key in keys {
                params.push(Value::from(key.domain.as_str()));
                params.push(Value::from(key.window.start));
            }
            let tuples = vec!["(?, FROM_UNIXTIME(?))"; keys.len()].join(", ");
            tx.exec_drop(format!("DELETE FROM domain_minute WHERE (domain, minute_start) IN ({tuples})"), params).await?;
        }
        for rows in batch.rejects.chunks(chunk) {
            let mut params = Vec::with_capacity(rows.len() * 7);
            for (row, epoch) in rows {
                params.push(Value::from(self.source.as_str()));
                params.push(Value::from(row.partition));
                params.push(Value::from(row.offset));
                params.push(Value::from(row.reason.as_str()));
                params.push(Value::from(truncate_chars(&row.detail, 255)));
                params.push(Value::Bytes(row.sample.clone()));
                params.push(Value::from(*epoch));
            }
            tx.exec_drop(insert_rejects_sql(rows.len()), params).await?;
        }
        tx.commit().await
    }
}

impl Drop for MysqlWriter {
    fn drop(&mut self) {
        let pool = self.pool.clone();
        let _ = self.runtime.block_on(pool.disconnect());
    }
}

fn non_negative(value: i64) -> u64 {
    // Absolute values of positive contributions; a negative one would be a broken invariant.
    debug_assert!(value >= 0, "negative aggregate {value}");
    value.max(0) as u64
}

fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

fn upsert_domain_minute_sql(rows: usize) -> String {
    let tuple = "(?, FROM_UNIXTIME(?), ?, ?, ?, ?, ?, ?, ?)";
    format!(
        "INSERT INTO domain_minute (domain, minute_start, requests, bytes, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx) \
         VALUES {} ON DUPLICATE KEY UPDATE requests = VALUES(requests), bytes = VALUES(bytes), \
         status_1xx = VALUES(status_1xx), status_2xx = VALUES(status_2xx), status_3xx = VALUES(status_3xx), \
         status_4xx = VALUES(status_4xx), status_5xx = VALUES(status_5xx)",
        vec![tuple; rows].join(", ")
    )
}

fn insert_rejects_sql(rows: usize) -> String {
    let tuple = "(?, ?, ?, ?, ?, ?, FROM_UNIXTIME(?))";
    format!(
        "INSERT INTO rejects (source, partition_id, msg_offset, reason, detail, sample, epoch) VALUES {} \
         ON DUPLICATE KEY UPDATE reason = VALUES(reason), detail = VALUES(detail), sample = VALUES(sample), epoch = VALUES(epoch)",
        vec![tuple; rows].join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_have_one_placeholder_per_parameter() {
        assert_eq!(upsert_domain_minute_sql(3).matches('?').count(), 27);
        assert_eq!(insert_rejects_sql(2).matches('?').count(), 14);
    }

    #[test]
    fn details_are_cut_on_character_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("ab", 5), "ab");
    }
}
