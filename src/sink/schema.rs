//! The MySQL schema and `edgeflow migrate`. Migrations are applied in order and recorded in
//! `schema_migrations`; the job refuses to start on an outdated schema.
//!
//! Conventions: times are `DATETIME` in UTC (every connection sets `time_zone = '+00:00'`),
//! byte counts are response bytes as nginx logged them, counts are requests. Text from log
//! lines is stored as-is and escaped only where it is shown.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use tracing::info;

/// One schema step: applied once, in order, inside `migrate`.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "domain minute series and rejects",
    statements: &[
        "CREATE TABLE IF NOT EXISTS domain_minute (
            domain        VARCHAR(253)    NOT NULL COMMENT 'host, lower-cased, port stripped',
            minute_start  DATETIME        NOT NULL COMMENT 'UTC start of the minute',
            requests      BIGINT UNSIGNED NOT NULL COMMENT 'requests whose log time is in the minute',
            bytes         BIGINT UNSIGNED NOT NULL COMMENT 'response bytes (bytes_sent, else body_bytes_sent)',
            status_1xx    BIGINT UNSIGNED NOT NULL,
            status_2xx    BIGINT UNSIGNED NOT NULL,
            status_3xx    BIGINT UNSIGNED NOT NULL,
            status_4xx    BIGINT UNSIGNED NOT NULL,
            status_5xx    BIGINT UNSIGNED NOT NULL,
            updated_at    TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
            PRIMARY KEY (domain, minute_start),
            KEY by_minute (minute_start)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS rejects (
            source        VARCHAR(255)    NOT NULL COMMENT 'kafka:<topic> or file:<path>',
            partition_id  INT             NOT NULL COMMENT 'Kafka partition; 0 for files',
            msg_offset    BIGINT          NOT NULL COMMENT 'Kafka offset, or 1-based line number for files',
            reason        VARCHAR(32)     NOT NULL COMMENT 'reason code, e.g. bad_format, too_late',
            detail        VARCHAR(255)    NOT NULL COMMENT 'what was wrong, for a person',
            sample        VARBINARY(1024) NOT NULL COMMENT 'first 1 KiB of the message as received',
            epoch         DATETIME        NOT NULL COMMENT 'UTC event-time epoch the reject was recorded in',
            recorded_at   TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
            PRIMARY KEY (source, partition_id, msg_offset),
            KEY by_reason (reason, epoch)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    ],
}];

pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("mysql: {0}")]
    Mysql(#[from] mysql_async::Error),
    #[error("invalid mysql url: {0}")]
    Url(#[from] mysql_async::UrlError),
    #[error("schema is at version {found}, this edgeflow needs {needed}: run `edgeflow migrate`")]
    Outdated { found: u32, needed: u32 },
    #[error("schema is at version {found}, newer than this edgeflow knows ({known}); upgrade edgeflow")]
    Newer { found: u32, known: u32 },
}

/// Connection options shared by every edgeflow connection: UTC session time zone.
pub fn connection_opts(url: &str) -> Result<Opts, SchemaError> {
    let opts = Opts::from_url(url)?;
    Ok(OptsBuilder::from_opts(opts).init(vec!["SET time_zone = '+00:00'"]).into())
}

async fn current_version(conn: &mut Conn) -> Result<u32, SchemaError> {
    conn.query_drop(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INT UNSIGNED NOT NULL PRIMARY KEY,
            name       VARCHAR(200) NOT NULL,
            applied_at TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP
        ) ENGINE=InnoDB",
    )
    .await?;
    let version: Option<u32> = conn.query_first("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").await?;
    Ok(version.unwrap_or(0))
}

/// Applies every migration newer than the database's version; returns the versions applied.
pub async fn migrate(url: &str) -> Result<Vec<u32>, SchemaError> {
    let mut conn = Conn::new(connection_opts(url)?).await?;
    let found = current_version(&mut conn).await?;
    if found > latest_version() {
        return Err(SchemaError::Newer { found, known: latest_version() });
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        // MySQL commits DDL implicitly, so each statement is idempotent (IF NOT EXISTS) and
        // the version row is written last: a crash mid-way re-runs the step safely.
        for statement in migration.statements {
            conn.query_drop(*statement).await?;
        }
        conn.exec_drop("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (migration.version, migration.name))
            .await?;
        info!(version = migration.version, name = migration.name, "schema migration applied");
        applied.push(migration.version);
    }
    conn.disconnect().await?;
    Ok(applied)
}

/// Fails unless the schema is exactly at the version this build writes.
pub async fn check(url: &str) -> Result<(), SchemaError> {
    let mut conn = Conn::new(connection_opts(url)?).await?;
    let found = current_version(&mut conn).await?;
    conn.disconnect().await?;
    match found.cmp(&latest_version()) {
        std::cmp::Ordering::Less => Err(SchemaError::Outdated { found, needed: latest_version() }),
        std::cmp::Ordering::Greater => Err(SchemaError::Newer { found, known: latest_version() }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}
