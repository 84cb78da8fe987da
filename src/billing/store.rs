//! Reads what `edgeflow billing` needs from MySQL: each domain's samples of the month from
//! `domain_bandwidth_5m` and its first and last sample ever (for partial months). Every
//! statement is parameterised; times cross the wire as Unix seconds (`FROM_UNIXTIME` /
//! `UNIX_TIMESTAMP` in the UTC session every edgeflow connection sets).
//!
//! Accounts come from `clean.accounts` through the job's own matcher
//! ([`CleanRules::account`]: exact domain, else the nearest `*.parent` wildcard), so a bill
//! and the pipeline can never disagree about which account a domain belongs to.

use dataflows::clean::CleanRules;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::{Activity, DomainSeries, Month, Sample, Scope};
use crate::sink::schema::{self, connection_opts, SchemaError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("mysql: {0}")]
    Mysql(#[from] mysql_async::Error),
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// The series of every domain in `scope` with samples in `month`, in domain order. For
/// `Scope::Domain`, the domain if it has ever had a sample (then a month without any of its
/// samples bills zeros over its period).
pub async fn load(url: &str, month: Month, scope: &Scope, rules: &CleanRules) -> Result<Vec<DomainSeries>, StoreError> {
    schema::check(url).await?;
    let mut conn = Conn::new(connection_opts(url)?).await?;
    let result = load_with(&mut conn, month, scope, rules).await;
    conn.disconnect().await?;
    result
}

async fn load_with(conn: &mut Conn, month: Month, scope: &Scope, rules: &CleanRules) -> Result<Vec<DomainSeries>, StoreError> {
    let domains: Vec<String> = match scope {
        Scope::Domain(domain) => vec![domain.clone()],
        Scope::All | Scope::Account(_) => {
            let all: Vec<String> = conn
                .exec(
                    "SELECT DISTINCT domain FROM domain_bandwidth_5m \
                     WHERE sample_start >= FROM_UNIXTIME(?) AND sample_start < FROM_UNIXTIME(?) ORDER BY domain",
                    (month.start(), month.end()),
                )
                .await?;
            match scope {
                Scope::Account(account) => all.into_iter().filter(|d| rules.account(d) == Some(account.as_str())).collect(),
                _ => all,
            }
        }
    };

    let mut series = Vec::with_capacity(domains.len());
    for domain in domains {
        let bounds: Option<(Option<i64>, Option<i64>)> = conn
            .exec_first(
                "SELECT CAST(UNIX_TIMESTAMP(MIN(sample_start)) AS SIGNED), CAST(UNIX_TIMESTAMP(MAX(sample_start)) AS SIGNED) \
                 FROM domain_bandwidth_5m WHERE domain = ?",
                (domain.as_str(),),
            )
            .await?;
        let activity = match bounds {
            Some((Some(first_sample), Some(last_sample))) => Activity { first_sample, last_sample },
            // Never had a sample (a `--domain` typo, say): nothing to bill, not a month of zeros.
            _ => continue,
        };
        let rows: Vec<(i64, u64)> = conn
            .exec(
                "SELECT CAST(UNIX_TIMESTAMP(sample_start) AS SIGNED), bytes FROM domain_bandwidth_5m \
                 WHERE domain = ? AND sample_start >= FROM_UNIXTIME(?) AND sample_start < FROM_UNIXTIME(?) \
                 ORDER BY sample_start",
                (domain.as_str(), month.start(), month.end()),
            )
            .await?;
        series.push(DomainSeries {
            account: rules.account(&domain).map(str::to_string),
            activity: Some(activity),
            samples: rows.into_iter().map(|(start, bytes)| Sample { start, bytes }).collect(),
            domain,
        });
    }
    Ok(series)
}
