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

pub const MIGRATIONS: &[Migration] = &[
Migration {
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
},
Migration {
    version: 2,
    name: "window statistics, sliding windows, bandwidth samples, top clients, alerts",
    statements: &[
        // Columns shared by the minute series and the sliding windows. Cache counts use
        // $upstream_cache_status: hit = HIT/STALE/UPDATING/REVALIDATED, miss = MISS/EXPIRED,
        // other = BYPASS/-; NULL where the log format lacks the field.
        // Defaults let the sink upsert a row's column groups independently (traffic,
        // clients, latency, peak) as each changes.
        "ALTER TABLE domain_minute
            MODIFY COLUMN requests   BIGINT UNSIGNED NOT NULL DEFAULT 0,
            MODIFY COLUMN bytes      BIGINT UNSIGNED NOT NULL DEFAULT 0,
            MODIFY COLUMN status_1xx BIGINT UNSIGNED NOT NULL DEFAULT 0,
            MODIFY COLUMN status_2xx BIGINT UNSIGNED NOT NULL DEFAULT 0,
            MODIFY COLUMN status_3xx BIGINT UNSIGNED NOT NULL DEFAULT 0,
            MODIFY COLUMN status_4xx BIGINT UNSIGNED NOT NULL DEFAULT 0,
            MODIFY COLUMN status_5xx BIGINT UNSIGNED NOT NULL DEFAULT 0,
            ADD COLUMN IF NOT EXISTS cache_hit            BIGINT UNSIGNED NULL COMMENT 'requests served from cache',
            ADD COLUMN IF NOT EXISTS cache_miss           BIGINT UNSIGNED NULL COMMENT 'requests fetched from the origin (MISS, EXPIRED)',
            ADD COLUMN IF NOT EXISTS cache_other          BIGINT UNSIGNED NULL COMMENT 'BYPASS or not cacheable (-)',
            ADD COLUMN IF NOT EXISTS distinct_clients     BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'exact distinct client IPs',
            ADD COLUMN IF NOT EXISTS request_time_p50_ms  DOUBLE NULL COMMENT '$request_time median, ms (histogram, <= 1% relative error)',
            ADD COLUMN IF NOT EXISTS request_time_p95_ms  DOUBLE NULL,
            ADD COLUMN IF NOT EXISTS request_time_p99_ms  DOUBLE NULL,
            ADD COLUMN IF NOT EXISTS upstream_time_p95_ms DOUBLE NULL COMMENT '$upstream_response_time p95, ms',
            ADD COLUMN IF NOT EXISTS avg_bps              DOUBLE NOT NULL DEFAULT 0 COMMENT 'bytes * 8 / window length, bit/s',
            ADD COLUMN IF NOT EXISTS peak_bps             DOUBLE NOT NULL DEFAULT 0 COMMENT 'busiest second of the window, bit/s'",
        "CREATE TABLE IF NOT EXISTS domain_window (
            domain               VARCHAR(253)    NOT NULL,
            window_secs          INT UNSIGNED    NOT NULL COMMENT 'window length, s',
            window_start         DATETIME        NOT NULL COMMENT 'UTC start',
            requests             BIGINT UNSIGNED NOT NULL DEFAULT 0,
            bytes                BIGINT UNSIGNED NOT NULL DEFAULT 0,
            status_1xx BIGINT UNSIGNED NOT NULL DEFAULT 0, status_2xx BIGINT UNSIGNED NOT NULL DEFAULT 0,
            status_3xx BIGINT UNSIGNED NOT NULL DEFAULT 0, status_4xx BIGINT UNSIGNED NOT NULL DEFAULT 0,
            status_5xx BIGINT UNSIGNED NOT NULL DEFAULT 0,
            cache_hit BIGINT UNSIGNED NULL, cache_miss BIGINT UNSIGNED NULL, cache_other BIGINT UNSIGNED NULL,
            distinct_clients     BIGINT UNSIGNED NOT NULL DEFAULT 0,
            request_time_p50_ms DOUBLE NULL, request_time_p95_ms DOUBLE NULL, request_time_p99_ms DOUBLE NULL,
            upstream_time_p95_ms DOUBLE NULL,
            avg_bps DOUBLE NOT NULL DEFAULT 0, peak_bps DOUBLE NOT NULL DEFAULT 0,
            updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
            PRIMARY KEY (domain, window_secs, window_start),
            KEY by_start (window_start)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS domain_status_minute (
            domain       VARCHAR(253)      NOT NULL,
            minute_start DATETIME          NOT NULL,
            status       SMALLINT UNSIGNED NOT NULL COMMENT 'HTTP status code',
            requests     BIGINT UNSIGNED   NOT NULL,
            PRIMARY KEY (domain, minute_start, status)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS domain_bandwidth_5m (
            domain       VARCHAR(253)    NOT NULL,
            sample_start DATETIME        NOT NULL COMMENT 'UTC start of the 5-minute interval',
            bytes        BIGINT UNSIGNED NOT NULL COMMENT 'response bytes; bandwidth = bytes * 8 / 300 bit/s',
            requests     BIGINT UNSIGNED NOT NULL,
            PRIMARY KEY (domain, sample_start),
            KEY by_start (sample_start)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS top_clients (
            domain       VARCHAR(253)    NOT NULL,
            window_secs  INT UNSIGNED    NOT NULL,
            window_start DATETIME        NOT NULL,
            metric       ENUM('requests','bytes') NOT NULL COMMENT 'what the ranking is by',
            rank_no      TINYINT UNSIGNED NOT NULL COMMENT '1 = top',
            client_ip    VARCHAR(45)     NOT NULL,
            requests     BIGINT UNSIGNED NOT NULL,
            bytes        BIGINT UNSIGNED NOT NULL,
            PRIMARY KEY (domain, window_secs, window_start, metric, rank_no)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS abuse_minute (
            minute_start DATETIME         NOT NULL,
            rank_no      TINYINT UNSIGNED NOT NULL COMMENT '1 = most requests across all domains',
            client_ip    VARCHAR(45)      NOT NULL,
            requests     BIGINT UNSIGNED  NOT NULL,
            bytes        BIGINT UNSIGNED  NOT NULL,
            PRIMARY KEY (minute_start, rank_no)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS alerts (
            domain         VARCHAR(253) NOT NULL,
            kind           ENUM('traffic_spike','traffic_collapse','error_rate','cache_collapse') NOT NULL,
            opened_minute  DATETIME     NOT NULL COMMENT 'UTC minute the condition first held',
            resolved_minute DATETIME    NULL COMMENT 'UTC minute it stopped holding; NULL while open',
            observed       DOUBLE       NOT NULL COMMENT 'value that opened the alert (req/min or ratio)',
            baseline       DOUBLE       NOT NULL COMMENT 'trailing baseline or threshold it was compared with',
            detail         VARCHAR(255) NOT NULL,
            PRIMARY KEY (domain, kind, opened_minute),
            KEY open_alerts (resolved_minute)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS alert_notifications (
            domain        VARCHAR(253) NOT NULL,
            kind          VARCHAR(32)  NOT NULL,
            opened_minute DATETIME     NOT NULL,
            event         ENUM('opened','resolved') NOT NULL,
            attempts      INT UNSIGNED NOT NULL,
            delivered_at  TIMESTAMP(3) NULL,
            last_error    VARCHAR(255) NULL,
            PRIMARY KEY (domain, kind, opened_minute, event)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    ],
},
Migration {
    version: 3,
    name: "job generation, per-partition checkpoints, alert detector state",
    statements: &[
        "CREATE TABLE IF NOT EXISTS job_state (
            source             VARCHAR(255)    NOT NULL COMMENT 'kafka:<topic> or file:<path>',
            generation         BIGINT UNSIGNED NOT NULL COMMENT 'bumped by every start; a commit from an older generation is refused',
            committed_upto     BIGINT UNSIGNED NULL COMMENT 'every epoch (event time, Unix s) before this is committed',
            alerts_next_minute BIGINT UNSIGNED NULL COMMENT 'every minute (Unix s) before this has been judged for alerts',
            started_at         TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
            updated_at         TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
            PRIMARY KEY (source)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS checkpoints (
            source         VARCHAR(255)    NOT NULL,
            partition_id   INT             NOT NULL,
            committed_upto BIGINT UNSIGNED NOT NULL COMMENT 'job_state.committed_upto this row was written with',
            resume_offset  BIGINT          NULL COMMENT 'next offset to read when the progress was taken; NULL: nothing read yet',
            replay_from    BIGINT          NULL COMMENT 'smallest offset whose record still reaches an epoch at or after committed_upto; NULL: the beginning',
            replay_state   TEXT            NOT NULL COMMENT 'JSON: watermark state at replay_from and idle advances after it',
            updated_at     TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
            PRIMARY KEY (source, partition_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS alert_detectors (
            source  VARCHAR(255) NOT NULL,
            domain  VARCHAR(253) NOT NULL,
            state   MEDIUMTEXT   NOT NULL COMMENT 'JSON of dataflows::alert::AlertDetector as of job_state.alerts_next_minute',
            PRIMARY KEY (source, domain)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    ],
},
Migration {
    version: 4,
    name: "one row per window: rankings and status codes as JSON columns, the old tables as views",
    // A ranking as 20 rows and a minute's status codes as a row each made a backfill write
    // about one row per input line; as columns of the window row, every changed window is
    // one upsert. The old shapes stay readable as views (JSON_TABLE, MariaDB 10.6+).
    // Each statement may be run again after a failure part way through.
    statements: &[
        "ALTER TABLE domain_minute
            ADD COLUMN IF NOT EXISTS top_by_requests JSON NOT NULL DEFAULT '[]' COMMENT 'top 10 clients by requests, best first: [{ip, requests, bytes}, ...]',
            ADD COLUMN IF NOT EXISTS top_by_bytes    JSON NOT NULL DEFAULT '[]' COMMENT 'top 10 clients by bytes, best first, as top_by_requests',
            ADD COLUMN IF NOT EXISTS statuses        JSON NOT NULL DEFAULT '[]' COMMENT 'requests per exact status code, by code: [[code, requests], ...]'",
        "ALTER TABLE domain_window
            ADD COLUMN IF NOT EXISTS top_by_requests JSON NOT NULL DEFAULT '[]' COMMENT 'top 10 clients by requests, best first: [{ip, requests, bytes}, ...]',
            ADD COLUMN IF NOT EXISTS top_by_bytes    JSON NOT NULL DEFAULT '[]' COMMENT 'top 10 clients by bytes, best first, as top_by_requests'",
        // Rows written before this version move into the new columns.
        "CREATE TABLE IF NOT EXISTS domain_status_minute (domain VARCHAR(253) NOT NULL, minute_start DATETIME NOT NULL, status SMALLINT UNSIGNED NOT NULL, requests BIGINT UNSIGNED NOT NULL, PRIMARY KEY (domain, minute_start, status))",
        "UPDATE domain_minute d JOIN (
            SELECT domain, minute_start, JSON_ARRAYAGG(JSON_ARRAY(status, requests) ORDER BY status) AS statuses
            FROM domain_status_minute GROUP BY domain, minute_start) s USING (domain, minute_start)
         SET d.statuses = s.statuses",
        "CREATE TABLE IF NOT EXISTS top_clients (domain VARCHAR(253) NOT NULL, window_secs INT UNSIGNED NOT NULL, window_start DATETIME NOT NULL, metric ENUM('requests','bytes') NOT NULL, rank_no TINYINT UNSIGNED NOT NULL, client_ip VARCHAR(45) NOT NULL, requests BIGINT UNSIGNED NOT NULL, bytes BIGINT UNSIGNED NOT NULL, PRIMARY KEY (domain, window_secs, window_start, metric, rank_no))",
        "UPDATE domain_minute d JOIN (
            SELECT domain, window_start, JSON_ARRAYAGG(JSON_OBJECT('ip', client_ip, 'requests', requests, 'bytes', bytes) ORDER BY rank_no) AS ranking
            FROM top_clients WHERE window_secs = 60 AND metric = 'requests' GROUP BY domain, window_start) t ON t.domain = d.domain AND t.window_start = d.minute_start
         SET d.top_by_requests = t.ranking",
        "UPDATE domain_minute d JOIN (
            SELECT domain, window_start, JSON_ARRAYAGG(JSON_OBJECT('ip', client_ip, 'requests', requests, 'bytes', bytes) ORDER BY rank_no) AS ranking
            FROM top_clients WHERE window_secs = 60 AND metric = 'bytes' GROUP BY domain, window_start) t ON t.domain = d.domain AND t.window_start = d.minute_start
         SET d.top_by_bytes = t.ranking",
        "UPDATE domain_window w JOIN (
            SELECT domain, window_secs, window_start, JSON_ARRAYAGG(JSON_OBJECT('ip', client_ip, 'requests', requests, 'bytes', bytes) ORDER BY rank_no) AS ranking
            FROM top_clients WHERE metric = 'requests' GROUP BY domain, window_secs, window_start) t USING (domain, window_secs, window_start)
         SET w.top_by_requests = t.ranking",
        "UPDATE domain_window w JOIN (
            SELECT domain, window_secs, window_start, JSON_ARRAYAGG(JSON_OBJECT('ip', client_ip, 'requests', requests, 'bytes', bytes) ORDER BY rank_no) AS ranking
            FROM top_clients WHERE metric = 'bytes' GROUP BY domain, window_secs, window_start) t USING (domain, window_secs, window_start)
         SET w.top_by_bytes = t.ranking",
        "DROP TABLE IF EXISTS domain_status_minute",
        "DROP TABLE IF EXISTS top_clients",
        "CREATE OR REPLACE VIEW domain_status_minute AS
            SELECT d.domain, d.minute_start, s.status, s.requests
            FROM domain_minute d,
                 JSON_TABLE(d.statuses, '$[*]' COLUMNS (status SMALLINT UNSIGNED PATH '$[0]', requests BIGINT UNSIGNED PATH '$[1]')) s",
        "CREATE OR REPLACE VIEW top_clients AS
            SELECT d.domain, 60 AS window_secs, d.minute_start AS window_start, 'requests' AS metric, r.rank_no, r.client_ip, r.requests, r.bytes
            FROM domain_minute d, JSON_TABLE(d.top_by_requests, '$[*]' COLUMNS (rank_no FOR ORDINALITY, client_ip VARCHAR(45) PATH '$.ip', requests BIGINT UNSIGNED PATH '$.requests', bytes BIGINT UNSIGNED PATH '$.bytes')) r
            UNION ALL
            SELECT d.domain, 60, d.minute_start, 'bytes', r.rank_no, r.client_ip, r.requests, r.bytes
            FROM domain_minute d, JSON_TABLE(d.top_by_bytes, '$[*]' COLUMNS (rank_no FOR ORDINALITY, client_ip VARCHAR(45) PATH '$.ip', requests BIGINT UNSIGNED PATH '$.requests', bytes BIGINT UNSIGNED PATH '$.bytes')) r
            UNION ALL
            SELECT w.domain, w.window_secs, w.window_start, 'requests', r.rank_no, r.client_ip, r.requests, r.bytes
            FROM domain_window w, JSON_TABLE(w.top_by_requests, '$[*]' COLUMNS (rank_no FOR ORDINALITY, client_ip VARCHAR(45) PATH '$.ip', requests BIGINT UNSIGNED PATH '$.requests', bytes BIGINT UNSIGNED PATH '$.bytes')) r
            UNION ALL
            SELECT w.domain, w.window_secs, w.window_start, 'bytes', r.rank_no, r.client_ip, r.requests, r.bytes
            FROM domain_window w, JSON_TABLE(w.top_by_bytes, '$[*]' COLUMNS (rank_no FOR ORDINALITY, client_ip VARCHAR(45) PATH '$.ip', requests BIGINT UNSIGNED PATH '$.requests', bytes BIGINT UNSIGNED PATH '$.bytes')) r",
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
    // `setup` runs on every new connection and again after a pooled connection is reset
    // (`init` would not), so every statement sees UTC.
    Ok(OptsBuilder::from_opts(opts).setup(vec!["SET time_zone = '+00:00'"]).into())
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
