//! Upgrading a database written before rankings and status codes became JSON columns
//! (schema version 3 → 4): the rows move into the window rows, the old tables become views
//! that read back exactly the rows that were there, and the move can run twice.

mod common;

use common::*;
use edgeflow::sink::schema::{migrate, MIGRATIONS};
use mysql_async::prelude::Queryable;

const T0: i64 = 1_795_000_020 - 1_795_000_020 % 60;

type TopRow = (String, u32, i64, String, u8, String, u64, u64);

/// The rows as version 3 stored them, in a stable order.
const TOP_QUERY: &str = "SELECT domain, window_secs, CAST(UNIX_TIMESTAMP(window_start) AS SIGNED), CAST(metric AS CHAR), rank_no, client_ip, requests, bytes \
                         FROM top_clients ORDER BY domain, window_secs, window_start, CAST(metric AS CHAR), rank_no";
const STATUS_QUERY: &str =
    "SELECT domain, CAST(UNIX_TIMESTAMP(minute_start) AS SIGNED), status, requests FROM domain_status_minute ORDER BY domain, minute_start, status";

#[test]
fn version_3_rankings_and_status_rows_move_into_the_window_rows() {
    let services = Services::from_env();
    let url = fresh_database(&services, "migration");
    let (top_before, status_before) = runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(&url).await.unwrap();
        conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
        conn.query_drop(
            "CREATE TABLE schema_migrations (version INT UNSIGNED NOT NULL PRIMARY KEY, name VARCHAR(200) NOT NULL, \
             applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB",
        )
        .await
        .unwrap();
        for migration in MIGRATIONS.iter().filter(|m| m.version <= 3) {
            for statement in migration.statements {
                conn.query_drop(*statement).await.unwrap();
            }
            conn.exec_drop("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (migration.version, migration.name)).await.unwrap();
        }
        for (domain, minute) in [("a.example", T0), ("a.example", T0 + 60), ("b.example", T0)] {
            conn.exec_drop("INSERT INTO domain_minute (domain, minute_start, requests) VALUES (?, FROM_UNIXTIME(?), 10)", (domain, minute))
                .await
                .unwrap();
        }
        conn.exec_drop("INSERT INTO domain_window (domain, window_secs, window_start, requests) VALUES ('a.example', 300, FROM_UNIXTIME(?), 30)", (T0,))
            .await
            .unwrap();
        conn.exec_drop(
            "INSERT INTO domain_status_minute (domain, minute_start, status, requests) VALUES \
             ('a.example', FROM_UNIXTIME(?), 200, 7), ('a.example', FROM_UNIXTIME(?), 404, 2), ('a.example', FROM_UNIXTIME(?), 503, 1), \
             ('a.example', FROM_UNIXTIME(?), 200, 10), ('b.example', FROM_UNIXTIME(?), 304, 10)",
            (T0, T0, T0, T0 + 60, T0),
        )
        .await
        .unwrap();
        conn.exec_drop(
            "INSERT INTO top_clients (domain, window_secs, window_start, metric, rank_no, client_ip, requests, bytes) VALUES \
             ('a.example', 60, FROM_UNIXTIME(?), 'requests', 1, '192.0.2.1', 6, 600), \
             ('a.example', 60, FROM_UNIXTIME(?), 'requests', 2, '2001:db8::7', 4, 9000), \
             ('a.example', 60, FROM_UNIXTIME(?), 'bytes', 1, '2001:db8::7', 4, 9000), \
             ('a.example', 60, FROM_UNIXTIME(?), 'bytes', 2, '192.0.2.1', 6, 600), \
             ('b.example', 60, FROM_UNIXTIME(?), 'requests', 1, '198.51.100.3', 10, 100), \
             ('a.example', 300, FROM_UNIXTIME(?), 'requests', 1, '192.0.2.1', 20, 2000), \
             ('a.example', 300, FROM_UNIXTIME(?), 'bytes', 1, '192.0.2.1', 20, 2000)",
            (T0, T0, T0, T0, T0, T0, T0),
        )
        .await
        .unwrap();
        let top: Vec<TopRow> = conn.query(TOP_QUERY).await.unwrap();
        let status: Vec<(String, i64, u16, u64)> = conn.query(STATUS_QUERY).await.unwrap();
        conn.disconnect().await.unwrap();
        (top, status)
    });
    assert_eq!((top_before.len(), status_before.len()), (7, 5), "the version 3 rows are in place");

    let applied = runtime().block_on(migrate(&url)).expect("migrate to the latest version");
    assert_eq!(applied, vec![4]);
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(&url).await.unwrap();
        conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
        let kinds: Vec<(String, String)> = conn
            .query("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN ('top_clients', 'domain_status_minute') ORDER BY table_name")
            .await
            .unwrap();
        assert_eq!(kinds, vec![("domain_status_minute".into(), "VIEW".into()), ("top_clients".into(), "VIEW".into())]);
        let top: Vec<TopRow> = conn.query(TOP_QUERY).await.unwrap();
        let status: Vec<(String, i64, u16, u64)> = conn.query(STATUS_QUERY).await.unwrap();
        assert_eq!(top, top_before, "the view reads back the rankings that were rows");
        assert_eq!(status, status_before, "the view reads back the status rows");
        let columns: Option<(String, String, String)> = conn
            .exec_first(
                "SELECT top_by_requests, top_by_bytes, statuses FROM domain_minute WHERE domain = 'a.example' AND minute_start = FROM_UNIXTIME(?)",
                (T0,),
            )
            .await
            .unwrap();
        let (by_requests, by_bytes, statuses) = columns.expect("the minute row");
        let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        assert_eq!(
            json(&by_requests),
            serde_json::json!([{"ip": "192.0.2.1", "requests": 6, "bytes": 600}, {"ip": "2001:db8::7", "requests": 4, "bytes": 9000}])
        );
        assert_eq!(json(&by_bytes)[0]["ip"], "2001:db8::7");
        assert_eq!(json(&statuses), serde_json::json!([[200, 7], [404, 2], [503, 1]]));
        // A second run of the step (as after a crash before its version row) changes nothing.
        for statement in MIGRATIONS.iter().find(|m| m.version == 4).unwrap().statements {
            conn.query_drop(*statement).await.unwrap();
        }
        let again: Vec<TopRow> = conn.query(TOP_QUERY).await.unwrap();
        assert_eq!(again, top_before, "re-running the step keeps the rankings");
        conn.disconnect().await.unwrap();
    });
}
