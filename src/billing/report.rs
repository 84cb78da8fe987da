//! Renders bills as an aligned table (for people), CSV (one row per bill, RFC 4180 quoting,
//! names starting with `=`, `+`, `-` or `@` prefixed with `'` against spreadsheet formulas)
//! or JSON (everything, including each day's peak). Units everywhere: bandwidth in Mbit/s
//! (10⁶ bit/s) of 5-minute samples, traffic in decimal GB (10⁹ bytes), times UTC.
//!
//! JSON shape: `{"month", "days_in_month", "units", "bills": [{"kind", "name", "account",
//! "domains", "period_start", "period_end", "effective_days", "effective_days_factor", "p95",
//! "p95_days_with_traffic", "days_with_traffic", "peak", "average_daily_peak_mbps",
//! "daily_peaks", "traffic_bytes", "traffic_gb"}]}`, where a percentile is `{"samples" (N),
//! "dropped" (M), "billed_rank" (M+1), "billed_bytes", "billed_mbps", "billed_at"}` or null for
//! an empty period (or, for the days-with-traffic variant, no traffic).

use std::fmt::Write as _;
use std::str::FromStr;

use serde::Serialize;

use super::{format_date, format_utc, gigabytes, mbit_per_sec, DailyPeak, Month, Percentile95, SubjectBill};

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

impl FromStr for ReportFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<ReportFormat, String> {
        match text {
            "table" => Ok(ReportFormat::Table),
            "csv" => Ok(ReportFormat::Csv),
            "json" => Ok(ReportFormat::Json),
            other => Err(format!("unknown format `{other}`: expected table, csv or json")),
        }
    }
}

/// The report of `bills` for `month` in `format`, ending with a newline.
pub fn render(month: Month, bills: &[SubjectBill], format: ReportFormat) -> String {
    match format {
        ReportFormat::Table => table(month, bills),
        ReportFormat::Csv => csv(bills),
        ReportFormat::Json => json(month, bills),
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    month: String,
    days_in_month: u32,
    units: Units,
    bills: Vec<JsonBill<'a>>,
}

#[derive(Serialize)]
struct Units {
    bandwidth: &'static str,
    traffic: &'static str,
    time: &'static str,
}

#[derive(Serialize)]
struct JsonBill<'a> {
    kind: &'static str,
    name: &'a str,
    account: Option<&'a str>,
    domains: &'a [String],
    period_start: String,
    period_end: String,
    effective_days: f64,
    effective_days_factor: f64,
    p95: Option<JsonPercentile>,
    p95_days_with_traffic: Option<JsonPercentile>,
    days_with_traffic: u32,
    peak: Option<JsonPeak>,
    average_daily_peak_mbps: f64,
    daily_peaks: Vec<JsonPeak>,
    traffic_bytes: u64,
    traffic_gb: f64,
}

#[derive(Serialize)]
struct JsonPercentile {
    samples: u32,
    dropped: u32,
    billed_rank: u32,
    billed_bytes: u64,
    billed_mbps: f64,
    billed_at: String,
}

impl From<Percentile95> for JsonPercentile {
    fn from(p: Percentile95) -> JsonPercentile {
        JsonPercentile {
            samples: p.samples,
            dropped: p.dropped,
            billed_rank: p.billed_rank(),
            billed_bytes: p.billed_bytes,
            billed_mbps: p.billed_mbit_per_sec(),
            billed_at: format_utc(p.billed_start),
        }
    }
}

#[derive(Serialize)]
struct JsonPeak {
    date: String,
    bytes: u64,
    mbps: f64,
    at: String,
}

impl From<DailyPeak> for JsonPeak {
    fn from(day: DailyPeak) -> JsonPeak {
        JsonPeak { date: format_date(day.day_start), bytes: day.peak_bytes, mbps: mbit_per_sec(day.peak_bytes), at: format_utc(day.peak_start) }
    }
}

fn json(month: Month, bills: &[SubjectBill]) -> String {
    let report = JsonReport {
        month: month.to_string(),
        days_in_month: month.days(),
        units: Units { bandwidth: "Mbit/s (10^6 bit/s), 5-minute samples", traffic: "GB (10^9 bytes)", time: "UTC" },
        bills: bills
            .iter()
            .map(|b| JsonBill {
                kind: b.subject.kind(),
                name: b.subject.name(),
                account: b.account.as_deref(),
                domains: &b.domains,
                period_start: format_utc(b.bill.period.start),
                period_end: format_utc(b.bill.period.end),
                effective_days: b.bill.effective_days,
                effective_days_factor: b.bill.effective_days_factor,
                p95: b.bill.all_days.map(JsonPercentile::from),
                p95_days_with_traffic: b.bill.traffic_days.map(JsonPercentile::from),
                days_with_traffic: b.bill.days_with_traffic,
                peak: b.bill.peak.map(JsonPeak::from),
                average_daily_peak_mbps: b.bill.average_daily_peak_mbit_per_sec(),
                daily_peaks: b.bill.daily_peaks.iter().copied().map(JsonPeak::from).collect(),
                traffic_bytes: b.bill.traffic_bytes,
                traffic_gb: gigabytes(b.bill.traffic_bytes),
            })
            .collect(),
    };
    // Plain data (strings and finite numbers): serialisation cannot fail.
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    text.push('\n');
    text
}

const COLUMNS: [&str; 17] = [
    "kind", "name", "account", "days", "factor", "n", "m", "p95_mbps", "p95_at", "traffic_days", "td_n", "td_m", "td_p95_mbps",
    "peak_mbps", "peak_at", "avg_daily_peak_mbps", "traffic_gb",
];

/// One bill's cells in `COLUMNS` order; `time` formats an interval start.
fn cells(bill: &SubjectBill, time: fn(i64) -> String) -> Vec<String> {
    let b = &bill.bill;
    let account = match (&bill.subject, &bill.account) {
        (super::Subject::Account(_), _) => match bill.domains.len() {
            1 => "(1 domain)".into(),
            count => format!("({count} domains)"),
        },
        (_, Some(account)) => account.clone(),
        (_, None) => "-".into(),
    };
    let percentile = |p: Option<Percentile95>| match p {
        Some(p) => [p.samples.to_string(), p.dropped.to_string(), format!("{:.3}", p.billed_mbit_per_sec()), time(p.billed_start)],
        None => ["0".into(), "0".into(), "-".into(), "-".into()],
    };
    let [n, m, p95, p95_at] = percentile(b.all_days);
    let [td_n, td_m, td_p95, _] = percentile(b.traffic_days);
    let (peak, peak_at) = match b.peak {
        Some(day) => (format!("{:.3}", mbit_per_sec(day.peak_bytes)), time(day.peak_start)),
        None => ("-".into(), "-".into()),
    };
    vec![
        bill.subject.kind().into(),
        bill.subject.name().into(),
        account,
        format!("{:.2}", b.effective_days),
        format!("{:.4}", b.effective_days_factor),
        n,
        m,
        p95,
        p95_at,
        b.days_with_traffic.to_string(),
        td_n,
        td_m,
        td_p95,
        peak,
        peak_at,
        format!("{:.3}", b.average_daily_peak_mbit_per_sec()),
        format!("{:.3}", gigabytes(b.traffic_bytes)),
    ]
}

/// `2026-03-14 10:05`: UTC, said once in the header.
fn short_time(secs: i64) -> String {
    let full = format_utc(secs);
    format!("{} {}", &full[..10], &full[11..16])
}

fn table(month: Month, bills: &[SubjectBill]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "edgeflow billing {month} ({} days): 95th percentile of 5-minute samples (N samples, top M dropped, the (M+1)-th billed)",
        month.days()
    );
    let _ = writeln!(out, "bandwidth in Mbit/s (10^6 bit/s), traffic in GB (10^9 bytes), times UTC; td_* = only days with traffic");
    if bills.is_empty() {
        let _ = writeln!(out, "no bandwidth samples in {month}");
        return out;
    }
    let header: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    let rows: Vec<Vec<String>> = std::iter::once(header).chain(bills.iter().map(|b| cells(b, short_time))).collect();
    let widths: Vec<usize> = (0..COLUMNS.len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let _ = writeln!(out, "log bytes are application bytes: expect about 10% below a CDN vendor's billed traffic");
    out
}

fn csv(bills: &[SubjectBill]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for bill in bills {
        let mut row = cells(bill, format_utc);
        // Names come from logs and config: keep spreadsheets from running them as formulas.
        for text in &mut row[1..=2] {
            if text.len() > 1 && text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                text.insert(0, '\'');
            }
        }
        let row: Vec<String> = row.iter().map(|cell| csv_field(cell)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// RFC 4180: quote fields with commas, quotes or line breaks; double the quotes.
fn csv_field(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{compute, Period, Sample, Subject};
    use super::*;

    fn bills() -> (Month, Vec<SubjectBill>) {
        let month: Month = "2026-04".parse().unwrap();
        let period = Period { start: month.start(), end: month.end() };
        // 433 samples of 3 MB: N = 8640, M = 432, billed 3 MB = 0.08 Mbit/s, the 433rd.
        let samples: Vec<Sample> = (0..433).map(|i| Sample { start: month.start() + i * 300, bytes: 3_000_000 }).collect();
        let bill = compute("a.example", month, period, &samples).unwrap();
        let domain = SubjectBill {
            subject: Subject::Domain("a.example".into()),
            account: Some("acme, inc".into()),
            domains: vec!["a.example".into()],
            bill: bill.clone(),
        };
        let account = SubjectBill { subject: Subject::Account("acme, inc".into()), account: None, domains: vec!["a.example".into()], bill };
        (month, vec![domain, account])
    }

    #[test]
    fn json_has_n_m_and_the_billed_sample() {
        let (month, bills) = bills();
        let value: serde_json::Value = serde_json::from_str(&render(month, &bills, ReportFormat::Json)).unwrap();
        assert_eq!(value["month"], "2026-04");
        let p95 = &value["bills"][0]["p95"];
        assert_eq!((p95["samples"].as_u64(), p95["dropped"].as_u64(), p95["billed_rank"].as_u64()), (Some(8640), Some(432), Some(433)));
        assert_eq!(p95["billed_at"], "2026-04-02T12:00:00Z");
        assert!((p95["billed_mbps"].as_f64().unwrap() - 0.08).abs() < 1e-12);
        assert_eq!(value["bills"][0]["traffic_gb"].as_f64(), Some(1.299));
        assert_eq!(value["bills"][1]["kind"], "account");
        assert_eq!(value["bills"][0]["daily_peaks"].as_array().map(Vec::len), Some(30));
    }

    #[test]
    fn csv_quotes_and_table_aligns() {
        let (month, bills) = bills();
        let csv = render(month, &bills, ReportFormat::Csv);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert!(lines[1].starts_with("domain,a.example,\"acme, inc\",30.00,1.0000,8640,432,0.080,2026-04-02T12:00:00Z,"), "{}", lines[1]);
        assert!(lines[2].starts_with("account,\"acme, inc\",(1 domain),"), "{}", lines[2]);
        let mut formula = bills[1].clone();
        formula.subject = Subject::Account("=HYPERLINK(\"x\")".into());
        let csv = render(month, &[formula], ReportFormat::Csv);
        assert!(csv.lines().nth(1).unwrap().starts_with("account,\"'=HYPERLINK(\"\"x\"\")\",(1 domain),"), "{csv}");
        let table = render(month, &bills, ReportFormat::Table);
        assert!(table.contains("2026-04-02 12:00"), "{table}");
        let header = table.lines().nth(2).unwrap();
        let row = table.lines().nth(3).unwrap();
        assert_eq!(header.find("p95_mbps"), row.find("0.080"), "{table}");
        assert!(render(month, &[], ReportFormat::Table).contains("no bandwidth samples in 2026-04"));
        assert_eq!("xml".parse::<ReportFormat>(), Err("unknown format `xml`: expected table, csv or json".into()));
    }
}
