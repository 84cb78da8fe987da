//! MySQL writer: one transaction per batch of closed epochs, with multi-row parameterised
//! upserts of absolute values, deletes of vanished keys and the batch's rejects. Retries
//! forever with capped exponential back-off: while MySQL is down the writing worker blocks,
//! which holds the dataflow's frontier back instead of dropping or double-applying an epoch.
//!
//! A window's row arrives whole (`WindowRow`), so each changed row is one upsert with every
//! column: its traffic, client statistics, percentiles, busiest second, and as JSON its
//! rankings and (minutes) its requests per status code. One row per window instead of one
//! per rank and status code is what keeps a backfill's writes near one row per window.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataflows::aggregate::{RankedClient, Traffic, WindowRow};
use dataflows::alert::AlertRow;
use dataflows::changes::Changes;
use dataflows::key::DomainWindow;
use dataflows::output::OutputBatch;
use dataflows::window::{Window, WindowKind, WindowPolicy};
use mysql_async::prelude::Queryable;
use mysql_async::{Pool, Transaction, TxOpts, Value};
use tracing::{debug, warn};

use crate::config::SinkConfig;
use crate::sink::datetime::{datetime_param, DatetimeError};
use crate::sink::schema::{connection_opts, SchemaError};
use crate::telemetry::METRICS;

pub struct MysqlWriter {
    runtime: tokio::runtime::Runtime,
    pool: Pool,
    /// `kafka:<topic>` or `file:<path>`: the rejects, job_state and checkpoints key.
    source: String,
    config: SinkConfig,
    policy: WindowPolicy,
    /// This instance's generation: a commit finding another one in job_state is refused.
    generation: u64,
}

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("mysql: {0}")]
    Mysql(#[from] mysql_async::Error),
    #[error("fenced: this instance is generation {mine} but job_state holds generation {current}; a newer instance owns {source_name}")]
    Fenced { mine: u64, current: u64, source_name: String },
    /// A time MySQL cannot store; retrying cannot help (future_time keeps such times out).
    #[error("{0}")]
    Datetime(#[from] DatetimeError),
}

/// A column of a statement: its name and how its parameter is sent.
struct Column(&'static str, Param);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Param {
    /// As given.
    Plain,
    /// Given as Unix seconds, sent as a `DATETIME` (see `sink::datetime`).
    Datetime,
}

const PARAM: Param = Param::Plain;
const DATETIME: Param = Param::Datetime;

/// The parameters of `rows` for `columns`, times converted to `DATETIME` values.
fn params(columns: &[&Column], rows: &[Vec<Value>]) -> Result<Vec<Value>, DatetimeError> {
    let mut params = Vec::with_capacity(rows.len() * columns.len());
    for row in rows {
        for (column, value) in columns.iter().zip(row) {
            params.push(match column.1 {
                Param::Plain => value.clone(),
                Param::Datetime => datetime_param(value.clone())?,
            });
        }
    }
    Ok(params)
}

impl MysqlWriter {
    pub fn new(url: &str, source: String, config: SinkConfig, policy: WindowPolicy, generation: u64) -> Result<Self, SchemaError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let pool = runtime.block_on(async { connection_opts(url).map(Pool::new) })?;
        Ok(MysqlWriter { runtime, pool, source, config, policy, generation })
    }

    /// Commits `batch`, retrying MySQL failures until it succeeds; fails only when fenced.
    pub fn commit(&self, batch: &OutputBatch) -> Result<(), CommitError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(self.config.retry_initial_ms);
        let mut attempt = 1u32;
        loop {
            match self.runtime.block_on(self.try_commit(batch)) {
                Ok(()) => break,
                Err(fatal @ (CommitError::Fenced { .. } | CommitError::Datetime(_))) => return Err(fatal),
                Err(CommitError::Mysql(err)) => {
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
        Ok(())
    }

    async fn try_commit(&self, batch: &OutputBatch) -> Result<(), CommitError> {
        let mut tx = self.pool.start_transaction(TxOpts::default()).await?;
        // Fencing: the row lock is held to the commit, so no newer instance can start in
        // between and see a state this commit then changes.
        let current: Option<u64> =
            tx.exec_first("SELECT generation FROM job_state WHERE source = ? FOR UPDATE", (self.source.as_str(),)).await?;
        if current != Some(self.generation) {
            let current = current.unwrap_or(0);
            return Err(CommitError::Fenced { mine: self.generation, current, source_name: self.source.clone() });
        }
        self.write_windows(&mut tx, &batch.windows).await?;
        self.write_samples(&mut tx, &batch.samples).await?;
        self.write_abusers(&mut tx, &batch.abusers).await?;
        self.write_rejects(&mut tx, batch).await?;
        self.write_alerts(&mut tx, batch).await?;
        self.write_progress(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write_alerts(&self, tx: &mut Transaction<'_>, batch: &OutputBatch) -> Result<(), CommitError> {
        // A merged batch may hold an alert's opening and its resolution: the last one wins.
        let mut rows = BTreeMap::new();
        for event in &batch.alerts {
            let row = AlertRow::from_event(event);
            rows.insert((row.domain.clone(), row.kind, row.opened_minute), row);
        }
        let keys = [Column("domain", PARAM), Column("kind", PARAM), Column("opened_minute", DATETIME)];
        let columns = [Column("resolved_minute", DATETIME), Column("observed", PARAM), Column("baseline", PARAM), Column("detail", PARAM)];
        let rows: Vec<Vec<Value>> = rows
            .into_values()
            .map(|row| {
                vec![
                    Value::from(row.domain),
                    Value::from(row.kind),
                    Value::from(row.opened_minute),
                    row.resolved_minute.map_or(Value::NULL, Value::from),
                    Value::from(row.observed),
                    Value::from(row.baseline),
                    Value::from(row.detail),
                ]
            })
            .collect();
        self.upsert(tx, "alerts", &keys, &columns, rows).await?;

        let keys = [Column("source", PARAM), Column("domain", PARAM)];
        let source = || Value::from(self.source.as_str());
        let upserts: Vec<Vec<Value>> = batch
            .detectors
            .upserts()
            .map(|(domain, detector)| vec![source(), Value::from(domain.as_str()), Value::from(serde_json::to_string(detector).unwrap_or_default())])
            .collect();
        self.upsert(tx, "alert_detectors", &keys, &[Column("state", PARAM)], upserts).await?;
        let deletes = batch.detectors.deletes().map(|domain| vec![source(), Value::from(domain.as_str())]).collect();
        self.delete(tx, "alert_detectors", &keys, deletes).await
    }

    /// The job's progress: the committed frontier, the alerts' progress and every
    /// partition's replay point, in the transaction of the epochs they describe.
    async fn write_progress(&self, tx: &mut Transaction<'_>, batch: &OutputBatch) -> Result<(), CommitError> {
        let Some(checkpoint) = &batch.checkpoint else { return Ok(()) };
        tx.exec_drop(
            "UPDATE job_state SET committed_upto = ?, alerts_next_minute = COALESCE(?, alerts_next_minute) WHERE source = ?",
            (checkpoint.committed_upto, batch.alerts_next_minute, self.source.as_str()),
        )
        .await?;
        let keys = [Column("source", PARAM), Column("partition_id", PARAM)];
        let columns = [Column("committed_upto", PARAM), Column("resume_offset", PARAM), Column("replay_from", PARAM), Column("replay_state", PARAM)];
        let rows: Vec<Vec<Value>> = checkpoint
            .partitions
            .iter()
            .map(|(&partition, p)| {
                vec![
                    Value::from(self.source.as_str()),
                    Value::from(partition),
                    Value::from(checkpoint.committed_upto),
                    p.resume_offset.map_or(Value::NULL, Value::from),
                    p.replay.offset.map_or(Value::NULL, Value::from),
                    Value::from(serde_json::to_string(&p.replay).unwrap_or_default()),
                ]
            })
            .collect();
        self.upsert(tx, "checkpoints", &keys, &columns, rows).await
    }

    /// Multi-row `INSERT … ON DUPLICATE KEY UPDATE` of `rows`, chunked. Rows are built as the
    /// chunks are sent, so a large batch never holds all its parameters at once.
    async fn upsert(&self, tx: &mut Transaction<'_>, table: &str, keys: &[Column], values: &[Column], rows: impl IntoIterator<Item = Vec<Value>>) -> Result<(), CommitError> {
        let all: Vec<&Column> = keys.iter().chain(values).collect();
        let columns: Vec<&str> = all.iter().map(|c| c.0).collect();
        let tuple = format!("({})", vec!["?"; all.len()].join(", "));
        let updates: Vec<String> = values.iter().map(|c| format!("{0} = VALUES({0})", c.0)).collect();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Value>> = rows.by_ref().take(self.config.rows_per_statement).collect();
            let sql = format!(
                "INSERT INTO {table} ({}) VALUES {} ON DUPLICATE KEY UPDATE {}",
                columns.join(", "),
                vec![tuple.as_str(); chunk.len()].join(", "),
                updates.join(", ")
            );
            tx.exec_drop(sql, params(&all, &chunk)?).await?;
        }
        Ok(())
    }

    /// `DELETE … WHERE (keys) IN (…)`, chunked.
    async fn delete(&self, tx: &mut Transaction<'_>, table: &str, keys: &[Column], rows: Vec<Vec<Value>>) -> Result<(), CommitError> {
        let all: Vec<&Column> = keys.iter().collect();
        let names: Vec<&str> = all.iter().map(|c| c.0).collect();
        let tuple = format!("({})", vec!["?"; all.len()].join(", "));
        for chunk in rows.chunks(self.config.rows_per_statement) {
            let sql = format!("DELETE FROM {table} WHERE ({}) IN ({})", names.join(", "), vec![tuple.as_str(); chunk.len()].join(", "));
            tx.exec_drop(sql, params(&all, chunk)?).await?;
        }
        Ok(())
    }

    /// The table and key columns of a window's row.
    fn window_row(&self, key: &DomainWindow) -> (&'static str, Vec<Value>) {
        let w = &key.window;
        match w.kind {
            WindowKind::Minute => ("domain_minute", vec![(&*key.domain).into(), w.start.into()]),
            WindowKind::Sliding => {
                ("domain_window", vec![(&*key.domain).into(), self.policy.length_secs(w.kind).into(), w.start.into()])
            }
            WindowKind::Sample5m => ("domain_bandwidth_5m", vec![(&*key.domain).into(), w.start.into()]),
        }
    }

    fn key_columns(table: &str) -> &'static [Column] {
        match table {
            "domain_minute" => &[Column("domain", PARAM), Column("minute_start", DATETIME)],
            "domain_window" => &[Column("domain", PARAM), Column("window_secs", PARAM), Column("window_start", DATETIME)],
            _ => &[Column("domain", PARAM), Column("sample_start", DATETIME)],
        }
    }

    /// Groups rows by the table their window kind lives in.
    fn by_table<V>(&self, changes: &Changes<DomainWindow, V>, mut row: impl FnMut(&DomainWindow, Option<&V>) -> Option<Vec<Value>>) -> Vec<(&'static str, Vec<Vec<Value>>, Vec<Vec<Value>>)> {
        let mut tables: Vec<(&'static str, Vec<Vec<Value>>, Vec<Vec<Value>>)> = Vec::new();
        for (key, value) in &changes.0 {
            let (table, mut cells) = self.window_row(key);
            let index = match tables.iter().position(|t| t.0 == table) {
                Some(i) => i,
                None => {
                    tables.push((table, Vec::new(), Vec::new()));
                    tables.len() - 1
                }
            };
            match (value, row(key, value.as_ref())) {
                (Some(_), Some(values)) => {
                    cells.extend(values);
                    tables[index].1.push(cells);
                }
                (None, _) => tables[index].2.push(cells),
                (Some(_), None) => {}
            }
        }
        tables
    }

    /// Minute and sliding window rows: one upsert per changed row, every column.
    async fn write_windows(&self, tx: &mut Transaction<'_>, changes: &Changes<DomainWindow, Arc<WindowRow>>) -> Result<(), CommitError> {
        let policy = self.policy;
        for (table, upserts, deletes) in self.by_table(changes, |key, row| {
            Some(window_values(policy.length_secs(key.window.kind), row?, key.window.kind == WindowKind::Minute))
        }) {
            let columns: &[Column] = if table == "domain_minute" { &MINUTE_COLUMNS } else { &MINUTE_COLUMNS[..WINDOW_COLUMNS] };
            self.upsert(tx, table, Self::key_columns(table), columns, upserts).await?;
            self.delete(tx, table, Self::key_columns(table), deletes).await?;
        }
        Ok(())
    }

    /// Five-minute bandwidth samples.
    async fn write_samples(&self, tx: &mut Transaction<'_>, changes: &Changes<DomainWindow, Traffic>) -> Result<(), CommitError> {
        for (table, upserts, deletes) in self.by_table(changes, |_, t| t.map(|t| vec![non_negative(t.bytes).into(), non_negative(t.requests).into()])) {
            self.upsert(tx, table, Self::key_columns(table), &[Column("bytes", PARAM), Column("requests", PARAM)], upserts).await?;
            self.delete(tx, table, Self::key_columns(table), deletes).await?;
        }
        Ok(())
    }

    async fn write_abusers(&self, tx: &mut Transaction<'_>, changes: &Changes<Window, Vec<RankedClient>>) -> Result<(), CommitError> {
        let keys = [Column("minute_start", DATETIME)];
        // A minute's ranking only grows while it is live, so upserting its ranks overwrites
        // every rank written before; only a vanished minute's rows are deleted.
        self.delete(tx, "abuse_minute", &keys, changes.deletes().map(|w| vec![Value::from(w.start)]).collect()).await?;
        let mut rows = Vec::new();
        for (window, ranking) in changes.upserts() {
            for (rank, client) in ranking.iter().enumerate() {
                let mut row = vec![Value::from(window.start), Value::from(rank as u64 + 1)];
                row.extend(client_values(client));
                rows.push(row);
            }
        }
        let columns = [Column("rank_no", PARAM), Column("client_ip", PARAM), Column("requests", PARAM), Column("bytes", PARAM)];
        self.upsert(tx, "abuse_minute", &keys, &columns, rows).await
    }

    async fn write_rejects(&self, tx: &mut Transaction<'_>, batch: &OutputBatch) -> Result<(), CommitError> {
        let keys = [Column("source", PARAM), Column("partition_id", PARAM), Column("msg_offset", PARAM)];
        let columns = [Column("reason", PARAM), Column("detail", PARAM), Column("sample", PARAM), Column("epoch", DATETIME)];
        let rows: Vec<Vec<Value>> = batch
            .rejects
            .iter()
            .map(|(row, epoch)| {
                vec![
                    Value::from(self.source.as_str()),
                    Value::from(row.partition),
                    Value::from(row.offset),
                    Value::from(row.reason.as_str()),
                    Value::from(truncate_chars(&row.detail, 255)),
                    Value::Bytes(row.sample.clone()),
                    Value::from(*epoch),
                ]
            })
            .collect();
        self.upsert(tx, "rejects", &keys, &columns, rows).await
    }
}

impl Drop for MysqlWriter {
    fn drop(&mut self) {
        let pool = self.pool.clone();
        let _ = self.runtime.block_on(pool.disconnect());
    }
}

/// The value columns of a window row, in `window_values` order; `domain_window` takes the
/// first `WINDOW_COLUMNS`, `domain_minute` all of them.
const MINUTE_COLUMNS: [Column; 20] = [
    Column("requests", PARAM),
    Column("bytes", PARAM),
    Column("status_1xx", PARAM),
    Column("status_2xx", PARAM),
    Column("status_3xx", PARAM),
    Column("status_4xx", PARAM),
    Column("status_5xx", PARAM),
    Column("cache_hit", PARAM),
    Column("cache_miss", PARAM),
    Column("cache_other", PARAM),
    Column("avg_bps", PARAM),
    Column("distinct_clients", PARAM),
    Column("request_time_p50_ms", PARAM),
    Column("request_time_p95_ms", PARAM),
    Column("request_time_p99_ms", PARAM),
    Column("upstream_time_p95_ms", PARAM),
    Column("peak_bps", PARAM),
    Column("top_by_requests", PARAM),
    Column("top_by_bytes", PARAM),
    Column("statuses", PARAM),
];
/// Every column but the last, `statuses`.
const WINDOW_COLUMNS: usize = MINUTE_COLUMNS.len() - 1;

/// A window row's values for `MINUTE_COLUMNS`, the statuses only `with_statuses`.
fn window_values(window_secs: u64, row: &WindowRow, with_statuses: bool) -> Vec<Value> {
    let t = &row.traffic;
    let mut values: Vec<Value> = Vec::with_capacity(MINUTE_COLUMNS.len());
    values.push(non_negative(t.requests).into());
    values.push(non_negative(t.bytes).into());
    values.extend(t.status_class.iter().map(|c| Value::from(non_negative(*c))));
    let known = t.cache_known() > 0;
    values.extend(t.cache.iter().map(|c| if known { Value::from(non_negative(*c)) } else { Value::NULL }));
    values.push((non_negative(t.bytes) as f64 * 8.0 / window_secs as f64).into());
    values.push(row.clients.distinct.into());
    let ms = |us: u64| Value::from(us as f64 / 1000.0);
    values.extend(row.latency.request.map_or([Value::NULL, Value::NULL, Value::NULL], |p| p.map(ms)));
    values.push(row.latency.upstream_p95.map_or(Value::NULL, ms));
    values.push((row.peak_second_bytes as f64 * 8.0).into());
    values.push(ranking_json(&row.clients.by_requests).into());
    values.push(ranking_json(&row.clients.by_bytes).into());
    if with_statuses {
        values.push(statuses_json(&row.statuses).into());
    }
    values
}

/// `[{"ip":"192.0.2.7","requests":12,"bytes":3456}, ...]`, best first.
fn ranking_json(ranking: &[RankedClient]) -> String {
    serde_json::to_string(ranking).expect("a ranking serialises")
}

/// `[[200,31],[304,5], ...]`, by status code.
fn statuses_json(statuses: &[(u16, u64)]) -> String {
    serde_json::to_string(statuses).expect("status counts serialise")
}

fn client_values(client: &RankedClient) -> [Value; 3] {
    [Value::from(client.ip.to_string()), Value::from(client.requests), Value::from(client.bytes)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_cut_on_character_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("ab", 5), "ab");
    }
}
