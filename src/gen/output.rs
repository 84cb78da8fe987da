//! Where `edgeflow gen` writes: a file (or standard output) or a Kafka topic, either as fast
//! as possible or paced to the wall clock (`realtime`, for live demos).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tracing::info;

use super::{GenConfig, GenError, GeneratedLine, TrafficGen};
use crate::config::KafkaConfig;
use crate::kafka::{client_config, Role};

#[derive(Debug, thiserror::Error)]
pub enum GenOutputError {
    #[error(transparent)]
    Config(#[from] GenError),
    #[error("writing {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("creating topic {topic}: {code}")]
    CreateTopic { topic: String, code: RDKafkaErrorCode },
}

/// Where generated lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GenTarget {
    /// A file; `-` is standard output.
    File(PathBuf),
    /// The configured topic; created with `partitions` partitions if missing. Messages have no
    /// key, so the producer scatters them over partitions as Filebeat's default does.
    Kafka { partitions: i32 },
}

#[derive(Clone, Debug)]
pub struct GenRun {
    pub config: GenConfig,
    pub target: GenTarget,
    /// Emit each line when the wall clock reaches its stream clock (start time = now).
    pub realtime: bool,
    /// Stop after this many seconds of wall-clock time.
    pub seconds: Option<u64>,
}

/// Writes the run's lines; returns how many were written.
pub fn run(kafka: &KafkaConfig, mut run: GenRun) -> Result<u64, GenOutputError> {
    if run.realtime {
        run.config.start_ms = unix_now_ms();
    }
    let mut gen = TrafficGen::new(run.config.clone())?;
    let deadline = run.seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let started = Instant::now();
    let written = match &run.target {
        GenTarget::File(path) => {
            let display = path.display().to_string();
            let io_err = |source| GenOutputError::Io { path: display.clone(), source };
            let out: Box<dyn Write> =
                if display == "-" { Box::new(io::stdout().lock()) } else { Box::new(File::create(path).map_err(io_err)?) };
            let mut out = BufWriter::with_capacity(1 << 20, out);
            let written = emit(&mut gen, run.realtime, deadline, |line| {
                out.write_all(line.payload.as_bytes())?;
                out.write_all(b"\n")
            })
            .map_err(io_err)?;
            out.flush().map_err(io_err)?;
            written
        }
        GenTarget::Kafka { partitions } => {
            ensure_topic(kafka, *partitions)?;
            let producer: ThreadedProducer<DefaultProducerContext> = client_config(kafka, Role::Producer).create()?;
            let mut failure = None;
            let written = emit(&mut gen, run.realtime, deadline, |line| {
                let mut record = BaseRecord::<(), str>::to(&kafka.topic).payload(line.payload.as_str());
                loop {
                    match producer.send(record) {
                        Ok(()) => return Ok(()),
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Err((err, _)) => {
                            failure = Some(err);
                            return Err(io::Error::other("kafka producer failed"));
                        }
                    }
                }
            });
            if let Some(err) = failure {
                return Err(err.into());
            }
            let written = written.map_err(|source| GenOutputError::Io { path: kafka.topic.clone(), source })?;
            producer.flush(Duration::from_secs(120))?;
            written
        }
    };
    let secs = started.elapsed().as_secs_f64();
    info!(lines = written, secs, lines_per_sec = (written as f64 / secs.max(1e-3)) as u64, "gen finished");
    Ok(written)
}

fn emit(
    gen: &mut TrafficGen,
    realtime: bool,
    deadline: Option<Instant>,
    mut write: impl FnMut(&GeneratedLine) -> io::Result<()>,
) -> io::Result<u64> {
    let mut line = GeneratedLine::new();
    let mut written = 0;
    while gen.next_into(&mut line) {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if realtime {
            let ahead_ms = line.clock_ms - unix_now_ms();
            if ahead_ms > 0 {
                std::thread::sleep(Duration::from_millis(ahead_ms as u64));
            }
        }
        write(&line)?;
        written += 1;
    }
    Ok(written)
}

/// Creates the topic if it does not exist yet.
fn ensure_topic(kafka: &KafkaConfig, partitions: i32) -> Result<(), GenOutputError> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka, Role::Admin).create()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let topic = NewTopic::new(&kafka.topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in runtime.block_on(admin.create_topics([&topic], &options))? {
        match result {
            Ok(name) => info!(topic = %name, partitions, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(GenOutputError::CreateTopic { topic: name, code }),
        }
    }
    Ok(())
}

fn unix_now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
