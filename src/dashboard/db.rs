//! Every query the dashboard runs, through the read-only user's pool. Each statement is a
//! constant string with `?` placeholders (prepared, values bound by the server); the only
//! text ever spliced into SQL is another constant (a domain filter, or none).
//!
//! Times cross the boundary as Unix seconds: `FROM_UNIXTIME(?)` in, `UNIX_TIMESTAMP(col)` out,
//! both in the UTC session every pooled connection sets up (also after a pool reset).

use std::time::Duration;

use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts, Row, Value};
use serde::Serialize;

use super::range::TimeRange;

// The causes are part of the message, not `source()`, so `{:#}` chains print them once.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("mysql: {0}")]
    Mysql(mysql_async::Error),
    #[error("invalid mysql url: {0}")]
    Url(mysql_async::UrlError),
    #[error("query took longer than {0:?}")]
    Timeout(Duration),
    #[error("unexpected column value: {0}")]
    Value(String),
}

impl From<mysql_async::Error> for DbError {
    fn from(error: mysql_async::Error) -> Self {
        DbError::Mysql(error)
    }
}

impl From<mysql_async::UrlError> for DbError {
    fn from(error: mysql_async::UrlError) -> Self {
        DbError::Url(error)
    }
}

/// The dashboard's handle on MySQL.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    timeout: Duration,
}

/// The window of recent minutes the live probe watches, beyond the newest minute.
const PROBE_HORIZON_SECS: i64 = 3_600;

impl Db {
    /// A pool for `url` (no connection is made until the first query).
    pub fn new(url: &str, max_connections: usize, timeout: Duration) -> Result<Db, DbError> {
        let constraints = PoolConstraints::new(0, max_connections.max(1)).expect("0 <= max");
        let opts = OptsBuilder::from_opts(Opts::from_url(url)?)
            // `setup` (unlike `init`) runs again after the pool resets a connection.
            .setup(vec!["SET time_zone = '+00:00'", "SET SESSION TRANSACTION READ ONLY"])
            .pool_opts(PoolOpts::default().with_constraints(constraints));
        Ok(Db { pool: Pool::new(opts), timeout })
    }

    async fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, DbError> {
        let work = async {
            let mut conn = self.pool.get_conn().await?;
            let params = if params.is_empty() { Params::Empty } else { Params::Positional(params) };
            let rows: Vec<Row> = conn.exec(sql, params).await?;
            Ok::<_, DbError>(rows)
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| DbError::Timeout(self.timeout))?
    }

    /// The applied schema version (0 before `edgeflow migrate`).
    pub async fn schema_version(&self) -> Result<u32, DbError> {
        const NO_SUCH_TABLE: u16 = 1146;
        let rows = match self.rows("SELECT CAST(COALESCE(MAX(version), 0) AS UNSIGNED) FROM schema_migrations", vec![]).await {
            Err(DbError::Mysql(mysql_async::Error::Server(e))) if e.code == NO_SUCH_TABLE => return Ok(0),
            other => other?,
        };
        Ok(rows.into_iter().next().map(|mut r| take::<u64>(&mut r, 0)).transpose()?.unwrap_or(0) as u32)
    }

    /// Per-domain totals over `range`.
    pub async fn domain_totals(&self, range: &TimeRange) -> Result<Vec<(String, Totals)>, DbError> {
        let sql = format!("SELECT domain, {TOTALS} FROM domain_minute WHERE {IN_RANGE} GROUP BY domain ORDER BY domain");
        let rows = self.rows(&sql, vec![range.from.into(), range.to.into()]).await?;
        rows.into_iter()
            .map(|mut row| Ok((take::<String>(&mut row, 0)?, Totals::read(&mut row, 1)?)))
            .collect()
    }

    /// Requests per `(domain, bucket)` over `range` (overview sparklines).
    pub async fn domain_requests(&self, range: &TimeRange, step: i64) -> Result<Vec<(String, i64, u64)>, DbError> {
        let sql = format!(
            "SELECT domain, {BUCKET}, CAST(SUM(requests) AS UNSIGNED) FROM domain_minute WHERE {IN_RANGE} \
             GROUP BY domain, bucket ORDER BY domain, bucket"
        );
        let params = vec![range.from.into(), range.from.into(), step.into(), step.into(), range.from.into(), range.to.into()];
        self.rows(&sql, params)
            .await?
            .into_iter()
            .map(|mut row| Ok((take(&mut row, 0)?, take(&mut row, 1)?, take(&mut row, 2)?)))
            .collect()
    }

    /// Bucketed totals of one domain, or of all domains, over `range`.
    pub async fn series(&self, range: &TimeRange, step: i64, domain: Option<&str>) -> Result<Vec<(i64, Totals)>, DbError> {
        let filter = if domain.is_some() { "AND domain = ?" } else { "" };
        let sql = format!(
            "SELECT {BUCKET}, {TOTALS} FROM domain_minute WHERE {IN_RANGE} {filter} GROUP BY bucket ORDER BY bucket"
        );
        let mut params: Vec<Value> =
            vec![range.from.into(), range.from.into(), step.into(), step.into(), range.from.into(), range.to.into()];
        params.extend(domain.map(Value::from));
        self.rows(&sql, params)
            .await?
            .into_iter()
            .map(|mut row| Ok((take(&mut row, 0)?, Totals::read(&mut row, 1)?)))
            .collect()
    }

    /// The newest top-clients window of each length that starts in `range`. Rankings are
    /// JSON columns of the window rows: minutes in `domain_minute`, sliding windows in
    /// `domain_window`.
    pub async fn top_client_windows(&self, domain: &str, metric: &str, range: &TimeRange) -> Result<Vec<(u32, i64)>, DbError> {
        let column = ranking_column(metric)?;
        let sql = format!(
            "SELECT 60, CAST(UNIX_TIMESTAMP(MAX(minute_start)) AS SIGNED) FROM domain_minute \
             WHERE domain = ? AND minute_start >= FROM_UNIXTIME(?) AND minute_start < FROM_UNIXTIME(?) AND {column} <> '[]' \
             HAVING COUNT(*) > 0 \
             UNION ALL \
             SELECT window_secs, CAST(UNIX_TIMESTAMP(MAX(window_start)) AS SIGNED) FROM domain_window \
             WHERE domain = ? AND window_start >= FROM_UNIXTIME(?) AND window_start < FROM_UNIXTIME(?) AND {column} <> '[]' \
             GROUP BY window_secs ORDER BY 1"
        );
        let mut params: Vec<Value> = Vec::with_capacity(6);
        for _ in 0..2 {
            params.extend([domain.into(), range.from.into(), range.to.into()]);
        }
        self.rows(&sql, params).await?.into_iter().map(|mut row| Ok((take(&mut row, 0)?, take(&mut row, 1)?))).collect()
    }

    pub async fn top_clients(&self, domain: &str, metric: &str, window_secs: u32, window_start: i64) -> Result<Vec<TopClient>, DbError> {
        let column = ranking_column(metric)?;
        let (sql, params): (String, Vec<Value>) = if window_secs == 60 {
            (
                format!("SELECT {column} FROM domain_minute WHERE domain = ? AND minute_start = FROM_UNIXTIME(?)"),
                vec![domain.into(), window_start.into()],
            )
        } else {
            (
                format!("SELECT {column} FROM domain_window WHERE domain = ? AND window_secs = ? AND window_start = FROM_UNIXTIME(?)"),
                vec![domain.into(), window_secs.into(), window_start.into()],
            )
        };
        let Some(mut row) = self.rows(&sql, params).await?.into_iter().next() else { return Ok(Vec::new()) };
        let ranking: String = take(&mut row, 0)?;
        let ranked: Vec<RankedJson> =
            serde_json::from_str(&ranking).map_err(|e| DbError::Value(format!("{column} of {domain} at {window_start}: {e}")))?;
        Ok(ranked
            .into_iter()
            .zip(1u8..)
            .map(|(client, rank)| TopClient { rank, client_ip: client.ip, requests: client.requests, bytes: client.bytes })
            .collect())
    }

    /// Alerts open at any moment of `range`, newest first.
    pub async fn alerts(&self, range: &TimeRange, domain: Option<&str>, limit: u32) -> Result<Vec<Alert>, DbError> {
        let filter = if domain.is_some() { "AND domain = ?" } else { "" };
        let sql = format!(
            "SELECT domain, CAST(kind AS CHAR), CAST(UNIX_TIMESTAMP(opened_minute) AS SIGNED), \
             CAST(UNIX_TIMESTAMP(resolved_minute) AS SIGNED), observed, baseline, detail FROM alerts \
             WHERE opened_minute < FROM_UNIXTIME(?) AND (resolved_minute IS NULL OR resolved_minute >= FROM_UNIXTIME(?)) {filter} \
             ORDER BY opened_minute DESC, domain, kind LIMIT ?"
        );
        let mut params: Vec<Value> = vec![range.to.into(), range.from.into()];
        params.extend(domain.map(Value::from));
        params.push(limit.into());
        self.rows(&sql, params)
            .await?
            .into_iter()
            .map(|mut row| {
                Ok(Alert {
                    domain: take(&mut row, 0)?,
                    kind: take(&mut row, 1)?,
                    opened: take(&mut row, 2)?,
                    resolved: take(&mut row, 3)?,
                    observed: take(&mut row, 4)?,
                    baseline: take(&mut row, 5)?,
                    detail: take(&mut row, 6)?,
                })
            })
            .collect()
    }

    /// Rejects per reason in `range` (by epoch), optionally only those whose message
    /// contains `needle` (a domain).
    pub async fn reject_counts(&self, range: &TimeRange, needle: Option<&str>) -> Result<Vec<(String, u64)>, DbError> {
        let filter = if needle.is_some() { "AND LOCATE(CAST(? AS BINARY), sample) > 0" } else { "" };
        let sql = format!(
            "SELECT reason, CAST(COUNT(*) AS UNSIGNED) FROM rejects \
             WHERE epoch >= FROM_UNIXTIME(?) AND epoch < FROM_UNIXTIME(?) {filter} GROUP BY reason ORDER BY 2 DESC, reason"
        );
        let mut params: Vec<Value> = vec![range.from.into(), range.to.into()];
        params.extend(needle.map(Value::from));
        self.rows(&sql, params).await?.into_iter().map(|mut row| Ok((take(&mut row, 0)?, take(&mut row, 1)?))).collect()
    }

    /// The newest rejects in `range`.
    pub async fn reject_samples(&self, range: &TimeRange, needle: Option<&str>, limit: u32) -> Result<Vec<RejectSample>, DbError> {
        let filter = if needle.is_some() { "AND LOCATE(CAST(? AS BINARY), sample) > 0" } else { "" };
        let sql = format!(
            "SELECT source, partition_id, msg_offset, reason, detail, sample, CAST(UNIX_TIMESTAMP(epoch) AS SIGNED) \
             FROM rejects WHERE epoch >= FROM_UNIXTIME(?) AND epoch < FROM_UNIXTIME(?) {filter} \
             ORDER BY epoch DESC, source, partition_id, msg_offset DESC LIMIT ?"
        );
        let mut params: Vec<Value> = vec![range.from.into(), range.to.into()];
        params.extend(needle.map(Value::from));
        params.push(limit.into());
        self.rows(&sql, params)
            .await?
            .into_iter()
            .map(|mut row| {
                let sample: Vec<u8> = take(&mut row, 5)?;
                Ok(RejectSample {
                    source: take(&mut row, 0)?,
                    partition: take(&mut row, 1)?,
                    offset: take(&mut row, 2)?,
                    reason: take(&mut row, 3)?,
                    detail: take(&mut row, 4)?,
                    sample: String::from_utf8_lossy(&sample).into_owned(),
                    epoch: take(&mut row, 6)?,
                })
            })
            .collect()
    }

    /// `(domain, sample_start, bytes)` of the 5-minute samples in `[from, to)`.
    pub async fn bandwidth_samples(&self, from: i64, to: i64, domain: Option<&str>) -> Result<Vec<(String, i64, u64)>, DbError> {
        let filter = if domain.is_some() { "AND domain = ?" } else { "" };
        let sql = format!(
            "SELECT domain, CAST(UNIX_TIMESTAMP(sample_start) AS SIGNED), bytes FROM domain_bandwidth_5m \
             WHERE sample_start >= FROM_UNIXTIME(?) AND sample_start < FROM_UNIXTIME(?) {filter}"
        );
        let mut params: Vec<Value> = vec![from.into(), to.into()];
        params.extend(domain.map(Value::from));
        self.rows(&sql, params)
            .await?
            .into_iter()
            .map(|mut row| Ok((take(&mut row, 0)?, take(&mut row, 1)?, take(&mut row, 2)?)))
            .collect()
    }

    /// A value that changes whenever the job commits new or changed rows: the newest minute,
    /// then the newest write, row count and request sum of the last hour before it, and the
    /// newest reject epoch per reason (a loose index scan).
    pub async fn change_probe(&self) -> Result<String, DbError> {
        let sql = "SELECT CAST(UNIX_TIMESTAMP(m.newest) AS SIGNED), \
                     (SELECT CAST(FLOOR(UNIX_TIMESTAMP(MAX(updated_at)) * 1000) AS SIGNED) FROM domain_minute \
                        WHERE minute_start >= m.newest - INTERVAL ? SECOND), \
                     (SELECT CAST(COUNT(*) AS UNSIGNED) FROM domain_minute WHERE minute_start >= m.newest - INTERVAL ? SECOND), \
                     (SELECT CAST(SUM(requests) AS UNSIGNED) FROM domain_minute WHERE minute_start >= m.newest - INTERVAL ? SECOND), \
                     (SELECT CAST(UNIX_TIMESTAMP(MAX(e)) AS SIGNED) FROM (SELECT MAX(epoch) AS e FROM rejects GROUP BY reason) r) \
                   FROM (SELECT MAX(minute_start) AS newest FROM domain_minute) m";
        let horizon = Value::from(PROBE_HORIZON_SECS);
        let rows = self.rows(sql, vec![horizon.clone(), horizon.clone(), horizon]).await?;
        let Some(mut row) = rows.into_iter().next() else { return Ok(String::new()) };
        let parts: Vec<String> = (0..5)
            .map(|i| take::<Option<i64>>(&mut row, i).map(|v| v.map_or_else(|| "-".into(), |v| v.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(parts.join(":"))
    }

    pub async fn disconnect(self) {
        let _ = self.pool.disconnect().await;
    }
}

/// `minute_start` in `[from, to)`; two placeholders.
const IN_RANGE: &str = "minute_start >= FROM_UNIXTIME(?) AND minute_start < FROM_UNIXTIME(?)";

/// The bucket of a minute: `from + ⌊(t − from) / step⌋ · step`; four placeholders.
const BUCKET: &str = "CAST(? + FLOOR((UNIX_TIMESTAMP(minute_start) - ?) / ?) * ? AS SIGNED) AS bucket";

/// The aggregate columns [`Totals::read`] reads, in its order.
const TOTALS: &str = "CAST(SUM(requests) AS UNSIGNED), CAST(SUM(bytes) AS UNSIGNED), \
    CAST(SUM(status_1xx) AS UNSIGNED), CAST(SUM(status_2xx) AS UNSIGNED), CAST(SUM(status_3xx) AS UNSIGNED), \
    CAST(SUM(status_4xx) AS UNSIGNED), CAST(SUM(status_5xx) AS UNSIGNED), \
    CAST(SUM(cache_hit) AS UNSIGNED), CAST(SUM(cache_miss) AS UNSIGNED), CAST(SUM(cache_other) AS UNSIGNED), \
    MAX(peak_bps), CAST(MAX(distinct_clients) AS UNSIGNED), \
    SUM(request_time_p50_ms * requests) / NULLIF(SUM(IF(request_time_p50_ms IS NULL, 0, requests)), 0), \
    SUM(request_time_p95_ms * requests) / NULLIF(SUM(IF(request_time_p95_ms IS NULL, 0, requests)), 0), \
    SUM(request_time_p99_ms * requests) / NULLIF(SUM(IF(request_time_p99_ms IS NULL, 0, requests)), 0), \
    SUM(upstream_time_p95_ms * requests) / NULLIF(SUM(IF(upstream_time_p95_ms IS NULL, 0, requests)), 0)";

/// Sums of `domain_minute` rows. Columns the job has not filled read as `None` (cache counts
/// and percentiles are NULL then; a peak or a distinct count of 0 beside requests is "not
/// computed", as no real traffic has either).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub bytes: u64,
    pub status: [u64; 5],
    pub cache_hit: Option<u64>,
    pub cache_miss: Option<u64>,
    pub cache_other: Option<u64>,
    /// Busiest second of any minute, bit/s.
    pub peak_bps: Option<f64>,
    /// Most distinct client IPs of any single minute.
    pub distinct_clients_max: Option<u64>,
    /// Request-weighted means of the per-minute percentiles, ms.
    pub request_time_p50_ms: Option<f64>,
    pub request_time_p95_ms: Option<f64>,
    pub request_time_p99_ms: Option<f64>,
    pub upstream_time_p95_ms: Option<f64>,
}

impl Totals {
    fn read(row: &mut Row, first: usize) -> Result<Totals, DbError> {
        let mut next = first;
        let mut col = || {
            next += 1;
            next - 1
        };
        let requests: Option<u64> = take(row, col())?;
        let bytes: Option<u64> = take(row, col())?;
        let mut status = [0u64; 5];
        for s in &mut status {
            *s = take::<Option<u64>>(row, col())?.unwrap_or(0);
        }
        let requests = requests.unwrap_or(0);
        let cache_hit = take(row, col())?;
        let cache_miss = take(row, col())?;
        let cache_other = take(row, col())?;
        let peak_bps: Option<f64> = take(row, col())?;
        let distinct: Option<u64> = take(row, col())?;
        let computed_f = |v: Option<f64>| v.filter(|v| *v > 0.0 || requests == 0);
        let computed_u = |v: Option<u64>| v.filter(|v| *v > 0 || requests == 0);
        Ok(Totals {
            requests,
            bytes: bytes.unwrap_or(0),
            status,
            cache_hit,
            cache_miss,
            cache_other,
            peak_bps: computed_f(peak_bps),
            distinct_clients_max: computed_u(distinct),
            request_time_p50_ms: take(row, col())?,
            request_time_p95_ms: take(row, col())?,
            request_time_p99_ms: take(row, col())?,
            upstream_time_p95_ms: take(row, col())?,
        })
    }

    /// `cache_hit / (cache_hit + cache_miss + cache_other)`, if the job recorded cache status.
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let hit = self.cache_hit?;
        let all = hit + self.cache_miss.unwrap_or(0) + self.cache_other.unwrap_or(0);
        (all > 0).then(|| hit as f64 / all as f64)
    }

    /// Share of requests with a 4xx (`class` 4) or 5xx status; `None` without requests.
    pub fn status_rate(&self, class: usize) -> Option<f64> {
        (self.requests > 0).then(|| self.status[class - 1] as f64 / self.requests as f64)
    }
}

/// One entry of a `top_by_requests` / `top_by_bytes` JSON column.
#[derive(serde::Deserialize)]
struct RankedJson {
    ip: String,
    requests: u64,
    bytes: u64,
}

/// The window-row column holding the ranking by `metric` (checked, never interpolated as
/// given).
fn ranking_column(metric: &str) -> Result<&'static str, DbError> {
    match metric {
        "requests" => Ok("top_by_requests"),
        "bytes" => Ok("top_by_bytes"),
        other => Err(DbError::Value(format!("no ranking by {other}"))),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TopClient {
    pub rank: u8,
    pub client_ip: String,
    pub requests: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    pub domain: String,
    pub kind: String,
    /// Unix seconds of the minute the condition first held.
    pub opened: i64,
    /// Unix seconds of the minute it stopped holding; `None` while open.
    pub resolved: Option<i64>,
    pub observed: f64,
    pub baseline: f64,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RejectSample {
    pub source: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    pub detail: String,
    /// The first 1 KiB of the message, invalid UTF-8 replaced by U+FFFD.
    pub sample: String,
    /// Unix seconds of the epoch it was recorded in.
    pub epoch: i64,
}

/// Column `i` of `row`, converted.
fn take<T: FromValue>(row: &mut Row, i: usize) -> Result<T, DbError> {
    match row.take_opt::<T, usize>(i) {
        Some(Ok(value)) => Ok(value),
        Some(Err(err)) => Err(DbError::Value(format!("column {i}: {err}"))),
        None => Err(DbError::Value(format!("column {i} missing"))),
    }
}
