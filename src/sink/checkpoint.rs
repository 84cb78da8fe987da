//! The start-up half of exactly-once (README, "Exactly once, ..."): take the job over by bumping its
//! generation, then read where the committed epochs left each partition and the alerts. The
//! commit half is `MysqlWriter::write_progress`, in the same transaction as the epochs.

use std::collections::BTreeMap;

use dataflows::alert::AlertDetector;
use dataflows::progress::ReplayPoint;
use dataflows::window::Time;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tracing::info;

use crate::sink::schema::{connection_opts, SchemaError};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("mysql: {0}")]
    Mysql(#[from] mysql_async::Error),
    #[error("{what} for {source_name} is not valid JSON ({err}); it was written by another edgeflow version or edited by hand")]
    Corrupt { what: String, source_name: String, err: serde_json::Error },
}

/// One partition's stored checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The next offset the reader had reached when it was taken; `None`: nothing read.
    pub resume_offset: Option<i64>,
    pub replay: ReplayPoint,
}

/// What a starting instance resumes from.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// This instance's generation; every commit checks it.
    pub generation: u64,
    /// Every epoch before this is committed; `None`: nothing is.
    pub committed_upto: Option<Time>,
    pub partitions: BTreeMap<i32, StoredCheckpoint>,
    /// Every minute before this has been judged for alerts.
    pub alerts_next_minute: Option<u64>,
    pub detectors: Vec<AlertDetector>,
}

/// If `bump` (the process whose worker 0 writes), bumps the generation of `source`, which
/// fences out any older instance still running; then, if `resume`, reads its checkpoints;
/// otherwise starts from nothing (file sources, which are read whole every time).
pub async fn take_over(url: &str, source: &str, bump: bool, resume: bool) -> Result<Resume, CheckpointError> {
    let mut conn = Conn::new(connection_opts(url)?).await?;
    if bump {
        conn.exec_drop(
            "INSERT INTO job_state (source, generation) VALUES (?, 1) \
             ON DUPLICATE KEY UPDATE generation = generation + 1, started_at = CURRENT_TIMESTAMP(3)",
            (source,),
        )
        .await?;
    }
    let row: Option<(u64, Option<u64>, Option<u64>)> =
        conn.exec_first("SELECT generation, committed_upto, alerts_next_minute FROM job_state WHERE source = ?", (source,)).await?;
    let (generation, committed_upto, alerts_next_minute) = row.unwrap_or((1, None, None));
    let mut found = Resume { generation, ..Default::default() };
    if resume {
        found.committed_upto = committed_upto;
        found.alerts_next_minute = alerts_next_minute;
        let rows: Vec<(i32, Option<i64>, String)> =
            conn.exec("SELECT partition_id, resume_offset, replay_state FROM checkpoints WHERE source = ?", (source,)).await?;
        for (partition, resume_offset, state) in rows {
            let replay = serde_json::from_str(&state).map_err(|err| CheckpointError::Corrupt {
                what: format!("checkpoint of partition {partition}"),
                source_name: source.to_owned(),
                err,
            })?;
            found.partitions.insert(partition, StoredCheckpoint { resume_offset, replay });
        }
        let detectors: Vec<(String, String)> = conn.exec("SELECT domain, state FROM alert_detectors WHERE source = ?", (source,)).await?;
        for (domain, state) in detectors {
            let detector = serde_json::from_str(&state).map_err(|err| CheckpointError::Corrupt {
                what: format!("alert detector of {domain}"),
                source_name: source.to_owned(),
                err,
            })?;
            found.detectors.push(detector);
        }
    }
    conn.disconnect().await?;
    info!(
        source,
        generation,
        committed_upto = ?found.committed_upto,
        partitions = found.partitions.len(),
        detectors = found.detectors.len(),
        "took over the job"
    );
    Ok(found)
}
