//! The JSON API behind every chart (documented in `dashboard/README.md`; `GET /api` lists it).
//!
//! Every endpoint takes the time range as `range=15m|1h|6h|24h|7d|30d` or `from`/`to` (UTC;
//! see [`super::range`]), answers JSON (`400 {"error": …}` for a bad parameter, `503` when
//! MySQL is unavailable, `504` when a query times out), and reads only through the read-only
//! user. Time series are columns (`t` plus one array per metric, `t` in Unix seconds); add
//! `format=rows` for one object per point (Grafana's JSON data sources like that better).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::warn;

use super::billing::{self, MonthBills};
use super::db::{DbError, Totals};
use super::range::{iso, Month, RangeParams, TimeRange, MAX_POINTS, MAX_SPARK_POINTS};
use super::{now, AppState};

/// Query parameters of every endpoint (each reads those it needs).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Params {
    pub range: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub domain: Option<String>,
    pub metric: Option<String>,
    pub window_secs: Option<String>,
    pub limit: Option<String>,
    pub month: Option<String>,
    pub by: Option<String>,
    pub format: Option<String>,
    pub account: Option<String>,
}

impl Params {
    fn range_params(&self) -> RangeParams {
        RangeParams { range: self.range.clone(), from: self.from.clone(), to: self.to.clone() }
    }

    fn domain(&self) -> Option<&str> {
        self.domain.as_deref().filter(|d| !d.is_empty())
    }

    fn limit(&self, default: u32, max: u32) -> Result<u32, ApiError> {
        match self.limit.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::BadRequest(format!("limit must be a number from 1 to {max}"))),
            },
        }
    }

    fn month(&self) -> Result<Month, ApiError> {
        match self.month.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(Month::containing(now())),
            Some(text) => Month::parse(text).ok_or_else(|| ApiError::BadRequest("month must be YYYY-MM".into())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<super::range::RangeError> for ApiError {
    fn from(err: super::range::RangeError) -> Self {
        ApiError::BadRequest(err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, message.clone()),
            ApiError::Db(DbError::Timeout(_)) => {
                warn!(error = %self, "dashboard query timed out");
                (StatusCode::GATEWAY_TIMEOUT, "the database took too long; try a shorter range".into())
            }
            ApiError::Db(error) => {
                warn!(error = %error, "dashboard query failed");
                (StatusCode::SERVICE_UNAVAILABLE, "database unavailable".into())
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn resolve(state: &AppState, params: &Params) -> Result<TimeRange, ApiError> {
    Ok(TimeRange::resolve(&params.range_params(), now(), state.config.max_range_days)?)
}

/// The resolved range, as every response echoes it.
#[derive(Serialize)]
struct RangeInfo {
    from: i64,
    to: i64,
    from_iso: String,
    to_iso: String,
    preset: Option<&'static str>,
    secs: i64,
}

fn range_info(range: &TimeRange) -> RangeInfo {
    RangeInfo {
        from: range.from,
        to: range.to,
        from_iso: iso(range.from),
        to_iso: iso(range.to),
        preset: range.preset,
        secs: range.secs(),
    }
}

/// Totals over a span of `secs` seconds, with the rates a person reads.
#[derive(Serialize)]
pub struct Summary {
    pub requests: u64,
    pub bytes: u64,
    /// Requests per minute, averaged over the span.
    pub requests_per_min: f64,
    /// Bandwidth averaged over the span, 10^6 bit/s.
    pub mbit_per_s: f64,
    /// Busiest second of the span, 10^6 bit/s (when the job computes it).
    pub peak_mbit_per_s: Option<f64>,
    pub status: BTreeMap<&'static str, u64>,
    /// Shares of requests (0..1).
    pub rate_4xx: Option<f64>,
    pub rate_5xx: Option<f64>,
    pub cache_hit: Option<u64>,
    pub cache_miss: Option<u64>,
    pub cache_other: Option<u64>,
    /// cache_hit / (cache_hit + cache_miss + cache_other).
    pub cache_hit_ratio: Option<f64>,
    pub distinct_clients_max: Option<u64>,
    pub request_time_p50_ms: Option<f64>,
    pub request_time_p95_ms: Option<f64>,
    pub request_time_p99_ms: Option<f64>,
    pub upstream_time_p95_ms: Option<f64>,
}

pub fn summary(t: &Totals, secs: i64) -> Summary {
    let secs = secs.max(1) as f64;
    Summary {
        requests: t.requests,
        bytes: t.bytes,
        requests_per_min: t.requests as f64 * 60.0 / secs,
        mbit_per_s: t.bytes as f64 * 8.0 / secs / 1e6,
        peak_mbit_per_s: t.peak_bps.map(|b| b / 1e6),
        status: ["1xx", "2xx", "3xx", "4xx", "5xx"].into_iter().zip(t.status).collect(),
        rate_4xx: t.status_rate(4),
        rate_5xx: t.status_rate(5),
        cache_hit: t.cache_hit,
        cache_miss: t.cache_miss,
        cache_other: t.cache_other,
        cache_hit_ratio: t.cache_hit_ratio(),
        distinct_clients_max: t.distinct_clients_max,
        request_time_p50_ms: t.request_time_p50_ms,
        request_time_p95_ms: t.request_time_p95_ms,
        request_time_p99_ms: t.request_time_p99_ms,
        upstream_time_p95_ms: t.upstream_time_p95_ms,
    }
}

fn add(total: &mut Totals, t: &Totals) {
    let opt = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    total.requests += t.requests;
    total.bytes += t.bytes;
    for (s, o) in total.status.iter_mut().zip(t.status) {
        *s += o;
    }
    total.cache_hit = opt(total.cache_hit, t.cache_hit);
    total.cache_miss = opt(total.cache_miss, t.cache_miss);
    total.cache_other = opt(total.cache_other, t.cache_other);
}

/// `GET /api/domains`: every domain with its totals and rates over the range and a
/// requests sparkline (`spark`, one value per `spark_step` seconds from `from`).
pub async fn domains(State(state): State<AppState>, Query(params): Query<Params>) -> ApiResult {
    let range = resolve(&state, &params)?;
    let step = range.step(MAX_SPARK_POINTS);
    let (totals, spark) = tokio::try_join!(state.db.domain_totals(&range), state.db.domain_requests(&range, step))?;
    let buckets: Vec<i64> = range.buckets(step).collect();
    let mut sparks: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (domain, bucket, requests) in spark {
        let line = sparks.entry(domain).or_insert_with(|| vec![0; buckets.len()]);
        if let Ok(i) = buckets.binary_search(&bucket) {
            line[i] = requests;
        }
    }
    let mut all = Totals::default();
    let domains: Vec<Value> = totals
        .iter()
        .map(|(domain, t)| {
            add(&mut all, t);
            let mut row = serde_json::to_value(summary(t, range.secs())).expect("summary serialises");
            row["domain"] = json!(domain);
            row["account"] = json!((state.accounts)(domain));
            row["spark"] = json!(sparks.get(domain).cloned().unwrap_or_else(|| vec![0; buckets.len()]));
            row
        })
        .collect();
    Ok(Json(json!({
        "range": range_info(&range),
        "spark_step": step,
        "totals": summary(&all, range.secs()),
        "domains": domains,
    }))
    .into_response())
}

/// `GET /api/series[?domain=D]`: bucketed time series of one domain (or all), the range's
/// summary, and for a domain its month-to-date 95th percentile.
pub async fn series(State(state): State<AppState>, Query(params): Query<Params>) -> ApiResult {
    let range = resolve(&state, &params)?;
    let domain = params.domain();
    let step = range.step(MAX_POINTS);
    let (rows, whole) = tokio::try_join!(state.db.series(&range, step, domain), state.db.series(&range, range.secs(), domain))?;
    let mut total = whole.into_iter().next().map(|(_, t)| t).unwrap_or_default();
    if domain.is_none() {
        total.peak_bps = None; // the domains' busiest seconds need not coincide
    }
    let by_bucket: BTreeMap<i64, Totals> = rows.into_iter().collect();
    let empty = Totals::default();
    let mut columns: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
    let mut t = Vec::new();
    for start in range.buckets(step) {
        let row = by_bucket.get(&start).unwrap_or(&empty);
        let s = summary(row, range.bucket_len(start, step));
        let has = row.requests > 0;
        t.push(start);
        let mut push = |name: &'static str, value: Value| columns.entry(name).or_default().push(value);
        push("requests", json!(s.requests));
        push("bytes", json!(s.bytes));
        push("requests_per_min", json!(s.requests_per_min));
        push("mbit_per_s", json!(s.mbit_per_s));
        // Across domains the busiest second is unknown (the peaks need not coincide).
        push("peak_mbit_per_s", json!(s.peak_mbit_per_s.filter(|_| has && domain.is_some())));
        for (i, class) in ["status_1xx", "status_2xx", "status_3xx", "status_4xx", "status_5xx"].into_iter().enumerate() {
            push(class, json!(row.status[i]));
        }
        push("rate_4xx", json!(s.rate_4xx));
        push("rate_5xx", json!(s.rate_5xx));
        push("cache_hit_ratio", json!(s.cache_hit_ratio));
        push("distinct_clients_max", json!(s.distinct_clients_max.filter(|_| has)));
        push("request_time_p50_ms", json!(s.request_time_p50_ms));
        push("request_time_p95_ms", json!(s.request_time_p95_ms));
        push("request_time_p99_ms", json!(s.request_time_p99_ms));
        push("upstream_time_p95_ms", json!(s.upstream_time_p95_ms));
    }
    let p95 = match domain {
        Some(domain) => Some(month_to_date_p95(&state, domain, range.to).await?),
        None => None,
    };
    let mut series = serde_json::Map::new();
    series.insert("t".into(), json!(t));
    for (name, values) in columns {
        series.insert(name.into(), Value::Array(values));
    }
    let series = if params.format.as_deref() == Some("rows") { rows_of(&series) } else { Value::Object(series) };
    Ok(Json(json!({
        "range": range_info(&range),
        "domain": domain,
        "account": domain.and_then(|d| (state.accounts)(d)),
        "step": step,
        "summary": summary(&total, range.secs()),
        "p95_month_to_date": p95,
        "series": series,
    }))
    .into_response())
}

/// The month-to-date 95th percentile of `domain` as of `at` (the month holding `at − 1`).
async fn month_to_date_p95(state: &AppState, domain: &str, at: i64) -> Result<Value, ApiError> {
    let month = Month::containing(at - 1);
    let as_of = at.min(now()).max(month.start());
    let rows = state.db.bandwidth_samples(month.start(), as_of.max(month.start() + 1), Some(domain)).await?;
    let bills = billing::month_bills(month, as_of, &rows, |_| None);
    let bill = bills.domains.first();
    Ok(json!({
        "month": month.to_string(),
        "as_of": as_of,
        "intervals": bills.intervals,
        "samples": bill.map_or(0, |b| b.samples),
        "p95_mbit_per_s": bill.map_or(0.0, |b| b.p95_mbit_per_s),
    }))
}

/// Column arrays → one object per point.
fn rows_of(columns: &serde_json::Map<String, Value>) -> Value {
    let len = columns.get("t").and_then(Value::as_array).map_or(0, Vec::len);
    let rows: Vec<Value> = (0..len)
        .map(|i| {
            let mut row = serde_json::Map::new();
            for (name, values) in columns {
                row.insert(name.clone(), values.get(i).cloned().unwrap_or(Value::Null));
            }
            Value::Object(row)
        })
        .collect();
    Value::Array(rows)
}

/// `GET /api/top_clients?domain=D[&metric=requests|bytes][&window_secs=W]`: the ranking of
/// the newest window in the range (the longest window length unless `window_secs` is given).
pub async fn top_clients(State(state): State<AppState>, Query(params): Query<Params>) -> ApiResult {
    let range = resolve(&state, &params)?;
    let domain = params.domain().ok_or_else(|| ApiError::BadRequest("domain is required".into()))?;
    let metric = match params.metric.as_deref().unwrap_or("requests") {
        m @ ("requests" | "bytes") => m,
        _ => return Err(ApiError::BadRequest("metric must be requests or bytes".into())),
    };
    let wanted = match params.window_secs.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(text.parse::<u32>().map_err(|_| ApiError::BadRequest("window_secs must be a number".into()))?),
    };
    let windows = state.db.top_client_windows(domain, metric, &range).await?;
    let chosen = match wanted {
        Some(w) => windows.iter().find(|(secs, _)| *secs == w).copied(),
        None => windows.last().copied(),
    };
    let clients = match chosen {
        Some((secs, start)) => state.db.top_clients(domain, metric, secs, start).await?,
        None => Vec::new(),
    };
    Ok(Json(json!({
        "range": range_info(&range),
        "domain": domain,
        "metric": metric,
        "windows": windows.iter().map(|(secs, start)| json!({"window_secs": secs, "window_start": start})).collect::<Vec<_>>(),
        "window_secs": chosen.map(|c| c.0),
        "window_start": chosen.map(|c| c.1),
        "clients": clients,
    }))
    .into_response())
}

/// `GET /api/alerts[?domain=D][&limit=N]`: alerts open at any time in the range, newest first.
pub async fn alerts(State(state): State<AppState>, Query(params): Query<Params>) -> ApiResult {
    let range = resolve(&state, &params)?;
    let limit = params.limit(50, 500)?;
    let alerts = state.db.alerts(&range, params.domain(), limit).await?;
    Ok(Json(json!({ "range": range_info(&range), "domain": params.domain(), "alerts": alerts })).into_response())
}

/// `GET /api/rejects[?domain=D][&limit=N]`: rejects in the range by reason, and the newest
/// ones; with `domain`, only messages that contain it.
pub async fn rejects(State(state): State<AppState>, Query(params): Query<Params>) -> ApiResult {
    let range = resolve(&state, &params)?;
    let limit = params.limit(20, 200)?;
    let domain = params.domain();
    let (reasons, samples) =
        tokio::try_join!(state.db.reject_counts(&range, domain), state.db.reject_samples(&range, domain, limit))?;
    let total: u64 = reasons.iter().map(|(_, n)| n).sum();
    Ok(Json(json!({
        "range": range_info(&range),
        "domain": domain,
        "total": total,
        "reasons": reasons.iter().map(|(reason, count)| json!({"reason": reason, "count": count})).collect::<Vec<_>>(),
        "samples": samples,
    }))
    .into_response())
}

async fn month_bills(state: &AppState, params: &Params) -> Result<MonthBills, ApiError> {
    let month = params.month()?;
    let at = now();
    let rows = state.db.bandwidth_samples(month.start(), month.end(), params.domain()).await?;
    Ok(billing::month_bills(month, at, &rows, |d| (state.accounts)(d)))
}

/// `GET /api/billing[?month=YYYY-MM][&domain=D]`: month-to-date 95th percentile and traffic
/// per domain and per account.
pub async fn billing(State(state): State<AppState>, Query(params): Query<Params>) -> ApiResult {
    Ok(Json(month_bills(&state, &params).await?).into_response())
}

/// `GET /api/bandwidth[?month=YYYY-MM][&domain=D | &account=A]`: every 5-minute sample of
/// the month so far (missing intervals as 0), summed over the selection (all domains by
/// default), with the selection's month-to-date 95th percentile.
pub async fn bandwidth(State(state): State<AppState>, Query(params): Query<Params>) -> ApiResult {
    let month = params.month()?;
    let account = params.account.as_deref().filter(|a| !a.is_empty());
    if account.is_some() && params.domain().is_some() {
        return Err(ApiError::BadRequest("give domain or account, not both".into()));
    }
    let at = now();
    let rows = state.db.bandwidth_samples(month.start(), month.end(), params.domain()).await?;
    let slots = billing::intervals(month, at) as usize;
    let mut bytes = vec![0u64; slots];
    let mut extra: BTreeMap<i64, u64> = BTreeMap::new();
    for (domain, start, b) in &rows {
        if account.is_some() && (state.accounts)(domain).as_deref() != account {
            continue;
        }
        let slot = (start - month.start()).div_euclid(billing::SAMPLE_SECS);
        match usize::try_from(slot).ok().filter(|s| *s < slots) {
            Some(i) => bytes[i] += b,
            None => *extra.entry(*start).or_default() += b,
        }
    }
    let samples: Vec<u64> = bytes.iter().chain(extra.values()).copied().collect();
    let p95 = billing::sample_bps(billing::percentile_95(&samples, slots as u64));
    let bps: Vec<f64> = samples.iter().map(|b| billing::sample_bps(*b)).collect();
    let t: Vec<i64> = (0..slots as i64).map(|i| month.start() + i * billing::SAMPLE_SECS).chain(extra.keys().copied()).collect();
    Ok(Json(json!({
        "month": month.to_string(),
        "domain": params.domain(),
        "account": account,
        "intervals": slots,
        "p95_mbit_per_s": p95 / 1e6,
        "total_bytes": bytes.iter().chain(extra.values()).sum::<u64>(),
        "series": {"t": t, "mbit_per_s": bps.iter().map(|b| b / 1e6).collect::<Vec<_>>()},
    }))
    .into_response())
}

/// `GET /api/billing.csv[?month=YYYY-MM][&by=domain|account]`: the same as CSV.
pub async fn billing_csv(State(state): State<AppState>, Query(params): Query<Params>) -> ApiResult {
    let accounts = match params.by.as_deref().unwrap_or("domain") {
        "domain" => false,
        "account" => true,
        _ => return Err(ApiError::BadRequest("by must be domain or account".into())),
    };
    let bills = month_bills(&state, &params).await?;
    let file = format!("attachment; filename=\"edgeflow-billing-{}-{}.csv\"", bills.month, if accounts { "accounts" } else { "domains" });
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
            (header::CONTENT_DISPOSITION, HeaderValue::from_str(&file).expect("ascii file name")),
        ],
        billing::csv(&bills, accounts),
    )
        .into_response())
}

/// `GET /api/events`: server-sent events; `change` whenever the job has written new rows.
pub async fn events(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.live.subscribe();
    let stream = futures_util::stream::unfold((receiver, true), |(mut receiver, first)| async move {
        if first {
            let version = *receiver.borrow_and_update();
            let hello = Event::default().event("hello").retry(Duration::from_millis(1_000)).data(json!({"version": version}).to_string());
            return Some((Ok(hello), (receiver, false)));
        }
        receiver.changed().await.ok()?;
        let version = *receiver.borrow_and_update();
        Some((Ok(Event::default().event("change").data(json!({"version": version}).to_string())), (receiver, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// `GET /api`: the endpoints, for people and scripts.
pub async fn index() -> Response {
    let range = "range=15m|1h|6h|24h|7d|30d, or from=&to= (Unix seconds or YYYY-MM-DD[THH:MM[:SS]], UTC)";
    Json(json!({
        "docs": "dashboard/README.md",
        "time_range": range,
        "endpoints": [
            {"path": "/api/domains", "params": "range", "returns": "per-domain totals, rates and a requests sparkline"},
            {"path": "/api/series", "params": "range, domain?, format=rows?", "returns": "bucketed time series, summary, month-to-date p95 (with domain)"},
            {"path": "/api/top_clients", "params": "range, domain, metric=requests|bytes, window_secs?", "returns": "top clients of the newest window"},
            {"path": "/api/alerts", "params": "range, domain?, limit?", "returns": "alerts open during the range"},
            {"path": "/api/rejects", "params": "range, domain?, limit?", "returns": "rejects by reason and the newest samples"},
            {"path": "/api/billing", "params": "month=YYYY-MM?, domain?", "returns": "month-to-date 95th percentile and traffic per domain and account"},
            {"path": "/api/bandwidth", "params": "month=YYYY-MM?, domain? or account?", "returns": "the month's 5-minute bandwidth samples and their 95th percentile"},
            {"path": "/api/billing.csv", "params": "month?, by=domain|account", "returns": "the same as CSV"},
            {"path": "/api/events", "params": "", "returns": "server-sent events: `change` when new rows were written"},
        ],
    }))
    .into_response()
}
