//! The HTML pages: server-rendered shells (maud escapes every value it interpolates) that
//! `dashboard/static/app.js` fills from the JSON API. No page holds inline script: values the
//! script needs travel in `data-` attributes, and the content security policy forbids the rest.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::api::Params;
use super::range::{Month, PRESETS};
use super::{now, AppState};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Page {
    Overview,
    Domain,
    Billing,
}

impl Page {
    fn name(self) -> &'static str {
        match self {
            Page::Overview => "overview",
            Page::Domain => "domain",
            Page::Billing => "billing",
        }
    }
}

fn layout(page: Page, title: &str, domain: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · edgeflow" }
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/uPlot.min.css";
                link rel="stylesheet" href="/assets/style.css";
                script defer src="/assets/uPlot.iife.min.js" {}
                script defer src="/assets/app.js" {}
            }
            body data-page=(page.name()) data-domain=[domain] {
                header.top {
                    a.brand href="/" { span.logo { "◆" } " edgeflow" }
                    nav {
                        a href="/" class=[(page != Page::Billing).then_some("active")] data-keep-range { "Overview" }
                        a href="/billing" class=[(page == Page::Billing).then_some("active")] { "Billing" }
                    }
                    @if page != Page::Billing { (range_picker()) }
                    span #live .live title="server-sent events from /api/events" { span.dot {} span #live-text { "connecting" } }
                }
                div #error .error hidden {}
                main { (body) }
                footer {
                    "All times UTC · read-only view of the edgeflow tables · "
                    a href="/api" { "JSON API" }
                }
            }
        }
    }
}

fn range_picker() -> Markup {
    html! {
        div #range .range role="group" aria-label="time range" {
            @for (name, _) in PRESETS {
                button type="button" data-range=(name) { (name) }
            }
            form #custom .custom {
                label { "from " input type="datetime-local" name="from" step="60" required; }
                label { "to " input type="datetime-local" name="to" step="60"; }
                span.utc { "UTC" }
                button type="submit" { "Apply" }
            }
            span #range-label .range-label {}
        }
    }
}

fn tile(id: &str, label: &str, hint: &str) -> Markup {
    html! {
        div.tile title=(hint) {
            span.label { (label) }
            span.value data-stat=(id) { "—" }
        }
    }
}

fn chart(id: &str, title: &str, hint: &str) -> Markup {
    html! {
        section.card {
            h2 { (title) span.hint { (hint) } }
            div.chart id=(id) {}
        }
    }
}

pub async fn overview() -> Response {
    let body = html! {
        section.tiles {
            (tile("rpm", "Requests / min", "requests in the range ÷ minutes in the range"))
            (tile("mbps", "Bandwidth Mbit/s", "response bytes × 8 ÷ seconds in the range"))
            (tile("rate4", "4xx rate", "share of requests with a 4xx status"))
            (tile("rate5", "5xx rate", "share of requests with a 5xx status"))
            (tile("hit", "Cache hit ratio", "HIT ÷ all requests with a cache status"))
            (tile("domains", "Domains", "domains with traffic in the range"))
        }
        div.grid {
            (chart("chart-requests", "Requests", "per minute, all domains"))
            (chart("chart-bandwidth", "Bandwidth", "Mbit/s, all domains"))
            (chart("chart-status", "Status classes", "requests per bucket"))
            section.card {
                h2 { "Top domains" span.hint { "by bandwidth" } }
                div #bars-domains .bars {}
            }
        }
        section.card {
            h2 { "Domains" span.hint { "click a column to sort, a domain for its page" } }
            div.table-wrap {
                table #domains .sortable {
                    thead { tr {
                        th data-key="domain" data-type="text" { "Domain" }
                        th data-key="account" data-type="text" { "Account" }
                        th.num data-key="requests_per_min" { "Req/min" }
                        th.num data-key="mbit_per_s" { "Mbit/s" }
                        th.num data-key="rate_4xx" { "4xx" }
                        th.num data-key="rate_5xx" { "5xx" }
                        th.num data-key="cache_hit_ratio" { "Cache hit" }
                        th.spark-col { "Requests" }
                    } }
                    tbody {}
                }
            }
            p #domains-empty .empty hidden { "No traffic in this range." }
        }
        div.grid {
            section.card {
                h2 { "Alerts" span.hint { "open during the range" } }
                ul #alerts .alerts {}
            }
            section.card {
                h2 { "Rejects" span.hint { "unusable log lines, by reason" } }
                div #rejects-bars .bars {}
                ul #rejects-samples .samples {}
            }
        }
    };
    Html(layout(Page::Overview, "Overview", None, body).into_string()).into_response()
}

pub async fn domain(State(state): State<AppState>, Path(domain): Path<String>) -> Response {
    let account = (state.accounts)(&domain);
    let body = html! {
        div.title-row {
            h1 #domain-name { (domain) }
            @if let Some(account) = &account { span.badge title="billing account" { "account " (account) } }
        }
        section.tiles {
            (tile("rpm", "Requests / min", "requests in the range ÷ minutes in the range"))
            (tile("mbps", "Bandwidth Mbit/s", "average over the range"))
            (tile("peak", "Peak Mbit/s", "busiest second in the range"))
            (tile("p95", "p95 month to date", "vendor 95th percentile of 5-minute samples, Mbit/s"))
            (tile("rate4", "4xx rate", "share of requests with a 4xx status"))
            (tile("rate5", "5xx rate", "share of requests with a 5xx status"))
            (tile("hit", "Cache hit ratio", "HIT ÷ all requests with a cache status"))
            (tile("lat95", "Latency p95", "request time, ms"))
        }
        div.grid {
            (chart("chart-requests", "Requests", "per minute"))
            (chart("chart-bandwidth", "Bandwidth", "Mbit/s, with the month-to-date 95th percentile"))
            (chart("chart-status", "Status classes", "requests per bucket"))
            (chart("chart-cache", "Cache hit ratio", "%"))
            (chart("chart-latency", "Latency", "request time p50 / p95 / p99, ms"))
            section.card {
                h2 { "Top clients" span.hint #top-hint { "newest window" } }
                div #bars-clients .bars {}
            }
            section.card {
                h2 { "Alerts" span.hint { "open during the range" } }
                ul #alerts .alerts {}
            }
            section.card {
                h2 { "Rejects" span.hint { "messages mentioning this domain" } }
                div #rejects-bars .bars {}
                ul #rejects-samples .samples {}
            }
        }
    };
    Html(layout(Page::Domain, &domain, Some(&domain), body).into_string()).into_response()
}

pub async fn billing(Query(params): Query<Params>) -> Response {
    let month = params.month.as_deref().and_then(Month::parse).unwrap_or_else(|| Month::containing(now()));
    let body = html! {
        div.title-row {
            h1 { "Billing" }
            form #month-form .month-form {
                label { "month " input type="month" name="month" value=(month.to_string()); }
                button type="submit" { "Show" }
            }
            span.exports {
                a #csv-domains href=(format!("/api/billing.csv?month={month}&by=domain")) download { "CSV per domain" }
                a #csv-accounts href=(format!("/api/billing.csv?month={month}&by=account")) download { "CSV per account" }
            }
        }
        p.note {
            "95th percentile the way CDN vendors bill it: 5-minute samples of outbound bandwidth, "
            "the top 5 % of the month's intervals dropped (missing intervals count as zero), "
            "the next one billed. The current month counts the intervals so far. "
            "Traffic in GB = 10" sup { "9" } " bytes. Logs count application bytes, about 10 % below a vendor's figure."
        }
        section.tiles {
            (tile("traffic", "Traffic GB", "response bytes this month ÷ 10^9"))
            (tile("accounts", "Accounts", "billing accounts with traffic"))
            (tile("domains", "Domains", "domains with traffic"))
            (tile("intervals", "Intervals N", "5-minute intervals counted; the top ⌊0.05·N⌋ are dropped"))
        }
        section.card {
            h2 { "Bandwidth this month" span.hint #bw-p95 { "5-minute samples" } }
            div.chart-controls {
                label { "show " select #bw-select { option value="" { "all traffic" } } }
            }
            div.chart #chart-month {}
        }
        div.grid {
            section.card {
                h2 { "p95 per account" span.hint { "Mbit/s" } }
                div #bars-accounts .bars {}
            }
            section.card {
                h2 { "p95 per domain" span.hint { "Mbit/s, highest 15" } }
                div #bars-domains .bars {}
            }
        }
        section.card {
            h2 { "Accounts" }
            div.table-wrap { table #bill-accounts .bill {
                thead { tr { th { "Account" } th { "Domains" } th.num { "p95 Mbit/s" } th.num { "Max Mbit/s" } th.num { "Traffic GB" } th.num { "Samples" } } }
                tbody {}
            } }
        }
        section.card {
            h2 { "Domains" }
            div.table-wrap { table #bill-domains .bill {
                thead { tr { th { "Domain" } th { "Account" } th.num { "p95 Mbit/s" } th.num { "Max Mbit/s" } th.num { "Traffic GB" } th.num { "Samples" } } }
                tbody {}
            } }
        }
    };
    Html(layout(Page::Billing, "Billing", None, body).into_string()).into_response()
}

pub async fn not_found() -> Response {
    let body = html! {
        section.card { h1 { "Not found" } p { a href="/" { "Back to the overview" } } }
    };
    (StatusCode::NOT_FOUND, Html(layout(Page::Overview, "Not found", None, body).into_string())).into_response()
}
