//! `edgeflow run`: builds the timely cluster, one dataflow per worker: source → pipeline →
//! sink, and runs it until the input is finished (files, `--exit-at-end`) or forever.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use dataflows::alert::AlertStage;
use dataflows::ingest::Ingest;
use dataflows::key::DomainSeed;
use dataflows::{output, pipeline};
use dataflows::window::{PartitionClock, Time};
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::Probe;
use tracing::{error, info};

use crate::config::Settings;
use crate::sink::checkpoint::CheckpointError;
use crate::sink::schema::SchemaError;
use crate::sink::{self, SinkError, SinkSettings, SinkTarget};
use crate::source::file::{expand, spawn_progress, BlockReader, FileReader, FileSourceError, MultiFileReader, ReadCounters, FILE_PARTITION};
use crate::source::kafka::{check_retention, partition_count, partitions_for, KafkaReader, KafkaSourceError};
use crate::source::{ingest_source, Pacing, ReadStatus, Reader, STOP};
use crate::telemetry::METRICS;

/// Where the job reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    Kafka,
    /// Files: comma-separated paths, directories and `*`/`?` patterns (see
    /// `source::file::expand`), or `-` for standard input.
    File(String),
}

impl SourceSpec {
    /// Parses `kafka` or `file:SPEC`.
    pub fn parse(text: &str) -> Result<SourceSpec, String> {
        match text.split_once(':') {
            _ if text == "kafka" => Ok(SourceSpec::Kafka),
            Some(("file", spec)) if !spec.trim().is_empty() => Ok(SourceSpec::File(spec.to_owned())),
            _ => Err(format!(
                "unknown source `{text}`: expected `kafka` or `file:PATH[,PATH...]` (files, directories, `*`/`?` patterns; `file:-` for stdin)"
            )),
        }
    }
}

/// Why a run failed; `main` decides the exit status from it (README).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("invalid cluster flags: {0}")]
    Cluster(ClusterError),
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("checking the schema at {url}: {error}")]
    Schema { url: String, error: SchemaError },
    #[error("reading topic metadata: {0}")]
    Topic(KafkaSourceError),
    #[error("reading the checkpoints: {0}")]
    Checkpoints(CheckpointError),
    #[error("checking the checkpoints against retention: {0}")]
    Retention(KafkaSourceError),
    /// Timely reports start-up failures as text.
    #[error("starting timely: {0}")]
    Timely(String),
    /// The sink stopped the job (fenced out, or a batch it cannot write).
    #[error(transparent)]
    Sink(SinkError),
    #[error("job failed: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Workers(Vec<WorkerError>),
    #[error("--source: {0}")]
    Files(FileSourceError),
    #[error("--source: {}: {error}", .path.display())]
    FileSize { path: PathBuf, error: std::io::Error },
    /// A file's partition is its place in the sorted list, so resuming over another set
    /// would replay the wrong files.
    #[error(
        "the checkpoints of file:{spec} cover {checkpointed} files but it now names {named}: resume needs the same files \
         (partition i is the i-th path in sorted order); run over the same set, or into a fresh database"
    )]
    FileSetChanged { spec: String, checkpointed: usize, named: usize },
}

/// A worker that could not do its part.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("worker {worker}: {error}")]
    Kafka { worker: usize, error: KafkaSourceError },
    #[error("worker {worker}: {error}")]
    File { worker: usize, error: FileSourceError },
    /// Timely hands over a panicked worker's message as text.
    #[error("a worker thread panicked: {0}")]
    Panicked(String),
}

/// Cluster flags that do not describe a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("-w must be at least 1")]
    NoWorkers,
    #[error("-p {process} is out of range for -n {processes}")]
    ProcessOutOfRange { process: usize, processes: usize },
    #[error("reading hostfile {}: {error}", .path.display())]
    Hostfile { path: PathBuf, error: std::io::Error },
    #[error("hostfile lists {listed} addresses for -n {processes}")]
    HostCount { listed: usize, processes: usize },
}

/// The global worker that reads file `index` of several.
fn file_worker(index: usize, peers: usize) -> usize {
    index % peers
}

/// Timely cluster shape: `-w` workers per process, `-n` processes, `-p` this process's index,
/// `-h` a hostfile with one `host:port` per process.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub workers: usize,
    pub processes: usize,
    pub process: usize,
    pub hostfile: Option<PathBuf>,
}

impl Cluster {
    fn timely_config(&self) -> Result<timely::Config, ClusterError> {
        if self.workers == 0 {
            return Err(ClusterError::NoWorkers);
        }
        if self.processes <= 1 {
            return Ok(timely::Config::process(self.workers));
        }
        if self.process >= self.processes {
            return Err(ClusterError::ProcessOutOfRange { process: self.process, processes: self.processes });
        }
        let addresses = match &self.hostfile {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ClusterError::Hostfile { path: path.clone(), error })?;
                text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect::<Vec<_>>()
            }
            None => (0..self.processes).map(|i| format!("127.0.0.1:{}", 2101 + i)).collect(),
        };
        if addresses.len() != self.processes {
            return Err(ClusterError::HostCount { listed: addresses.len(), processes: self.processes });
        }
        Ok(timely::Config {
            communication: timely::CommunicationConfig::Cluster {
                threads: self.workers,
                process: self.process,
                addresses,
                report: false,
                zerocopy: false,
            },
            worker: timely::WorkerConfig::default(),
        })
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub source: SourceSpec,
    pub cluster: Cluster,
    /// Kafka only: finish once every partition has reached the end of its log.
    pub exit_at_end: bool,
    /// Kafka only: continue when retention deleted messages the replay needs.
    pub accept_data_loss: bool,
    /// Where results go; `Null` writes nothing and reads no checkpoint (benchmarks).
    pub sink: SinkTarget,
}

/// What a finished run did (this process only).
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    pub messages: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub rows_written: u64,
    pub commits: u64,
    pub elapsed: Duration,
}

/// A worker's reader, chosen by source.
enum AnyReader {
    Kafka(KafkaReader),
    File(FileReader),
    Blocks(BlockReader),
    Files(MultiFileReader),
    Nothing,
}

impl Reader for AnyReader {
    fn read(&mut self, ingest: &mut Ingest, budget: usize) -> ReadStatus {
        match self {
            AnyReader::Kafka(r) => r.read(ingest, budget),
            AnyReader::File(r) => r.read(ingest, budget),
            AnyReader::Blocks(r) => r.read(ingest, budget),
            AnyReader::Files(r) => r.read(ingest, budget),
            AnyReader::Nothing => ReadStatus::Finished,
        }
    }
}

/// Runs the job until its input is finished (or forever). A sink error returns at once,
/// without waiting for the workers: the process is about to exit with it (fail-stop, as
/// timely is), and the last committed checkpoint is where the next start resumes.
pub fn run(settings: Settings, options: RunOptions) -> Result<RunSummary, JobError> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(JobError::Runtime)?;
    let to_mysql = options.sink == SinkTarget::Mysql;
    if to_mysql {
        runtime
            .block_on(sink::schema::check(&settings.mysql.url))
            .map_err(|error| JobError::Schema { url: redact(&settings.mysql.url), error })?;
    }
    let (partitions, source_name) = match &options.source {
        SourceSpec::Kafka => {
            // The shipper may create the topic after the job starts: wait a while for it.
            let deadline = Instant::now() + Duration::from_secs(60);
            let count = loop {
                match partition_count(&settings.kafka) {
                    Err(KafkaSourceError::NoTopic { .. }) if Instant::now() < deadline => {
                        info!(topic = %settings.kafka.topic, "waiting for the topic to exist");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    other => break other.map_err(JobError::Topic)?,
                }
            };
            info!(topic = %settings.kafka.topic, partitions = count, "kafka topic found");
            (count, format!("kafka:{}", settings.kafka.topic))
        }
        SourceSpec::File(spec) => (1, format!("file:{spec}")),
    };
    let files = match &options.source {
        SourceSpec::File(spec) => expand(spec).map_err(JobError::Files)?,
        SourceSpec::Kafka => Vec::new(),
    };
    // Several files: one progress bar for this process's share of them.
    let counters = Arc::new(ReadCounters::default());
    let reading_done = Arc::new(AtomicBool::new(false));
    let mut progress = None;
    if files.len() > 1 {
        let peers = options.cluster.workers * options.cluster.processes.max(1);
        let first = options.cluster.process * options.cluster.workers;
        let mut total = 0;
        for (index, path) in files.iter().enumerate() {
            let bytes = std::fs::metadata(path).map(|m| m.len()).map_err(|error| JobError::FileSize { path: path.clone(), error })?;
            let worker = file_worker(index, peers);
            if (first..first + options.cluster.workers).contains(&worker) {
                total += bytes;
            }
            info!(partition = index, worker, bytes, path = %path.display(), "file source partition");
        }
        progress = spawn_progress(total, Arc::clone(&counters), Arc::clone(&reading_done));
    }
    // Kafka and several files (offsets are line numbers of a fixed file) are replayed from
    // their checkpoints; a single file, split by byte blocks over however many workers run,
    // and standard input are read whole every time.
    let replayable = options.source == SourceSpec::Kafka || files.len() > 1;
    // Commits come from worker 0, in process 0: only that process takes a new generation.
    let writes = options.cluster.process == 0;
    let resume = if to_mysql {
        runtime.block_on(sink::checkpoint::take_over(&settings.mysql.url, &source_name, writes, replayable)).map_err(JobError::Checkpoints)?
    } else {
        Default::default()
    };
    let mut replay_from: BTreeMap<i32, i64> =
        resume.partitions.iter().filter_map(|(&p, c)| c.replay.offset.map(|o| (p, o))).collect();
    if options.source == SourceSpec::Kafka && !replay_from.is_empty() {
        check_retention(&settings.kafka, &mut replay_from, options.accept_data_loss).map_err(JobError::Retention)?;
    }
    // A file's partition is its place in the sorted list: a checkpoint for more files than
    // there are means the set changed, and resuming would replay the wrong files.
    if let (SourceSpec::File(spec), Some(&highest)) = (&options.source, resume.partitions.keys().next_back()) {
        if files.len() > 1 && highest >= files.len() as i32 {
            return Err(JobError::FileSetChanged { spec: spec.clone(), checkpointed: highest as usize + 1, named: files.len() });
        }
    }
    install_stop_signals();
    let timely_config = options.cluster.timely_config().map_err(JobError::Cluster)?;
    let (failures, sink_failures) = mpsc::channel::<SinkError>();
    let sink_settings = SinkSettings {
        target: options.sink,
        mysql_url: settings.mysql.url.clone(),
        source_name,
        config: settings.sink.clone(),
        policy: settings.window,
        notify: settings.notify.clone(),
        generation: resume.generation,
        failures,
    };
    let guards = timely::execute(timely_config, move |worker| -> Result<(), WorkerError> {
        let index = worker.index();
        let peers = worker.peers();
        let seed = agree_domain_seed(worker);
        let mut ingest = Ingest::new(settings.decoder(), settings.window)
            .with_resend_horizon(settings.kafka.resend_horizon_secs)
            .with_domain_seed(seed)
            .with_domain_gate(settings.domain_gate.clone());
        let mut failure = None;
        let reader = match &options.source {
            SourceSpec::Kafka => {
                let mut starts = Vec::new();
                for partition in partitions_for(index, peers, partitions) {
                    match resume.partitions.get(&partition) {
                        Some(checkpoint) => {
                            let mut point = checkpoint.replay.clone();
                            point.offset = replay_from.get(&partition).copied().or(point.offset);
                            ingest.resume_partition(partition, &point);
                            starts.push((partition, point.offset));
                        }
                        None => {
                            ingest.add_partition(partition, PartitionClock::default());
                            starts.push((partition, None));
                        }
                    }
                }
                match KafkaReader::new(&settings.kafka, &starts, options.exit_at_end) {
                    Ok(reader) => AnyReader::Kafka(reader),
                    Err(error) => {
                        failure = Some(WorkerError::Kafka { worker: index, error });
                        AnyReader::Nothing
                    }
                }
            }
            // Several files: each its own partition, spread over all workers.
            SourceSpec::File(_) if files.len() > 1 => {
                let mut mine = Vec::new();
                for (at, path) in files.iter().enumerate().filter(|(at, _)| file_worker(*at, peers) == index) {
                    let partition = at as i32;
                    // Resumed from its checkpoint's replay point (a line number), as Kafka is.
                    let start = match resume.partitions.get(&partition) {
                        Some(checkpoint) => {
                            ingest.resume_partition(partition, &checkpoint.replay);
                            checkpoint.replay.offset
                        }
                        None => {
                            ingest.add_partition(partition, PartitionClock::default());
                            None
                        }
                    };
                    mine.push((path.clone(), partition, start));
                }
                if mine.is_empty() { AnyReader::Nothing } else { AnyReader::Files(MultiFileReader::new(mine, Arc::clone(&counters))) }
            }
            // A plain file is split between all workers; gzip and stdin are read by worker 0.
            SourceSpec::File(_) => match BlockReader::open(&files[0], index, peers) {
                Ok(Some(reader)) if peers > 1 => {
                    ingest.add_partition(reader.partition(), PartitionClock::default());
                    AnyReader::Blocks(reader)
                }
                Ok(_) if index == 0 => match FileReader::open(&files[0]) {
                    Ok(reader) => {
                        ingest.add_partition(FILE_PARTITION, PartitionClock::default());
                        AnyReader::File(reader)
                    }
                    Err(error) => {
                        failure = Some(WorkerError::File { worker: index, error });
                        AnyReader::Nothing
                    }
                },
                Ok(_) => AnyReader::Nothing,
                Err(error) => {
                    failure = Some(WorkerError::File { worker: index, error });
                    AnyReader::Nothing
                }
            },
        };
        if let Some(failure) = &failure {
            // Timely is fail-stop; the dataflow is still built so the other workers finish.
            error!(worker = index, error = %failure, "source failed to start");
        }
        let sink_settings = sink_settings.clone();
        let alerts = AlertStage::restore(settings.alerts, resume.alerts_next_minute, resume.detectors.clone());
        let committed_upto = resume.committed_upto;
        let max_uncommitted = settings.sink.max_uncommitted_secs;
        worker.dataflow::<Time, _, _>(move |scope| {
            let pacing = Pacing { committed: ProbeHandle::new(), read: ProbeHandle::new(), max_uncommitted_secs: max_uncommitted };
            let ingested = ingest_source(scope, "Source", reader, ingest, pacing.clone()).probe_with(&pacing.read);
            let outputs = pipeline::build(ingested, sink_settings.policy);
            let batches = output::close_epochs(outputs, sink_settings.policy, committed_upto);
            let batches = output::detect_alerts(batches, alerts, sink_settings.policy);
            sink::write_batches(batches, sink_settings).probe_with(&pacing.committed);
        });
        while worker.step_or_park(Some(Duration::from_millis(100))) {}
        failure.map_or(Ok(()), Err)
    })
    .map_err(JobError::Timely)?;
    // The workers are joined on a thread of their own so that a sink error, which leaves
    // them running, is seen at once.
    let (joined, workers_done) = mpsc::channel();
    let joiner = std::thread::Builder::new().name("join-workers".into()).spawn(move || {
        let _ = joined.send(guards.join());
    });
    if let Err(err) = joiner {
        return Err(JobError::Workers(vec![WorkerError::Panicked(format!("cannot wait for the workers: {err}"))]));
    }
    let results = loop {
        if let Ok(err) = sink_failures.try_recv() {
            return Err(JobError::Sink(err));
        }
        match workers_done.recv_timeout(Duration::from_millis(50)) {
            Ok(results) => break results,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break vec![Err("the thread joining the workers ended without an answer".to_string())];
            }
        }
    };
    if let Ok(err) = sink_failures.try_recv() {
        return Err(JobError::Sink(err));
    }
    let failures: Vec<WorkerError> = results
        .into_iter()
        .filter_map(|result| match result {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err),
            Err(panic) => Some(WorkerError::Panicked(panic)),
        })
        .collect();
    reading_done.store(true, Ordering::Relaxed);
    if let Some(progress) = progress {
        let _ = progress.join();
    }
    if !failures.is_empty() {
        return Err(JobError::Workers(failures));
    }
    let summary = RunSummary {
        messages: METRICS.messages.get(),
        accepted: METRICS.accepted.get(),
        rejected: METRICS.rejected_total(),
        rows_written: METRICS.rows_written.get(),
        commits: METRICS.commits.get(),
        elapsed: started.elapsed(),
    };
    info!(
        messages = summary.messages,
        accepted = summary.accepted,
        rejected = summary.rejected,
        rows_written = summary.rows_written,
        commits = summary.commits,
        secs = summary.elapsed.as_secs_f64(),
        live_keys_peak = METRICS.live_keys_peak.get(),
        peak_rss_kib = crate::telemetry::peak_rss_kib(),
        "job finished"
    );
    Ok(summary)
}

/// The run's domain-hashing seed (see `dataflows::key`): worker 0 of process 0 draws it from
/// the OS's random source and broadcasts it, every worker waits for it. A fresh seed per run
/// is safe because no domain key outlives the run; agreeing on it keeps the exchange by
/// domain routing alike in every process.
fn agree_domain_seed(worker: &mut timely::worker::Worker) -> DomainSeed {
    use std::cell::Cell;
    use std::rc::Rc;
    use timely::dataflow::operators::vec::{Broadcast, Input};
    use timely::dataflow::operators::Inspect;

    let agreed = Rc::new(Cell::new(None));
    let seen = agreed.clone();
    let mut input = worker.dataflow::<u64, _, _>(|scope| {
        let (input, stream) = scope.new_input::<[u64; 2]>();
        stream.broadcast().inspect(move |keys: &[u64; 2]| seen.set(Some(DomainSeed(*keys))));
        input
    });
    if worker.index() == 0 {
        input.send(rand::random::<[u64; 2]>());
    }
    drop(input);
    while agreed.get().is_none() {
        worker.step();
    }
    agreed.get().expect("seen above")
}

/// SIGTERM and SIGINT set `source::STOP`: the job finishes the epochs read so far, commits
/// them with their checkpoints and exits 0.
fn install_stop_signals() {
    let spawned = std::thread::Builder::new().name("signals".into()).spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else { return };
            tokio::select! {
                _ = term.recv() => info!("SIGTERM: finishing the current epochs, then exiting"),
                _ = int.recv() => info!("SIGINT: finishing the current epochs, then exiting"),
            }
            STOP.store(true, Ordering::Relaxed);
        });
    });
    if let Err(err) = spawned {
        error!(error = %err, "cannot watch for SIGTERM; the job stops only when killed");
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_specs_parse() {
        assert_eq!(SourceSpec::parse("kafka"), Ok(SourceSpec::Kafka));
        assert_eq!(SourceSpec::parse("file:-"), Ok(SourceSpec::File("-".into())));
        assert_eq!(SourceSpec::parse("file:/var/log/a.log"), Ok(SourceSpec::File("/var/log/a.log".into())));
        assert_eq!(SourceSpec::parse("file:/var/log/nginx/,b.log.gz"), Ok(SourceSpec::File("/var/log/nginx/,b.log.gz".into())));
        assert!(SourceSpec::parse("file: ").is_err());
        assert!(SourceSpec::parse("file:").is_err());
        assert!(SourceSpec::parse("s3:x").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("mysql://u:secret@127.0.0.1:3307/db"), "mysql://u:***@127.0.0.1:3307/db");
        assert_eq!(redact("mysql://127.0.0.1/db"), "mysql://127.0.0.1/db");
    }

    #[test]
    fn a_source_that_cannot_open_is_a_typed_worker_failure() {
        let settings = Settings::load(None, Vec::new()).expect("defaults validate");
        let missing = tempfile::tempdir().unwrap().path().join("missing.log");
        let options = RunOptions {
            source: SourceSpec::File(missing.display().to_string()),
            cluster: Cluster { workers: 1, processes: 1, process: 0, hostfile: None },
            exit_at_end: false,
            accept_data_loss: false,
            sink: SinkTarget::Null,
        };
        match run(settings, options) {
            Err(JobError::Workers(failures)) => {
                assert!(matches!(failures.as_slice(), [WorkerError::File { worker: 0, error: FileSourceError::Open { .. } }]), "{failures:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cluster_flags_become_timely_configs() {
        let single = Cluster { workers: 2, processes: 1, process: 0, hostfile: None };
        assert!(matches!(single.timely_config().unwrap().communication, timely::CommunicationConfig::Process(2)));
        let bad = Cluster { workers: 2, processes: 2, process: 2, hostfile: None };
        assert!(matches!(bad.timely_config(), Err(ClusterError::ProcessOutOfRange { process: 2, processes: 2 })));
        let none = Cluster { workers: 0, ..single };
        assert!(matches!(none.timely_config(), Err(ClusterError::NoWorkers)));
    }
}
