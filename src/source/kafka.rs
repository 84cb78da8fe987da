//! Kafka reader: manual assignment, partition p to global worker p mod workers; no consumer
//! group, no offset commits (progress is kept with the results). Messages are parsed in
//! place from librdkafka's buffers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dataflows::ingest::Ingest;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::{unix_now_secs, ReadStatus, Reader};
use crate::config::{KafkaConfig, StartPosition};
use crate::kafka::{client_config, Role};

const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    #[error("kafka client: {0}")]
    Client(#[from] KafkaError),
    #[error("topic {topic} not found on {brokers}")]
    NoTopic { topic: String, brokers: String },
    #[error(
        "partition {partition} must be replayed from offset {replay_from}, but retention has deleted everything before {low}: \
         {lost} messages are lost. Restart with --accept-data-loss to continue from {low} anyway"
    )]
    RetentionLoss { partition: i32, replay_from: i64, low: i64, lost: i64 },
    #[error(
        "partition {partition}'s checkpoint is at offset {replay_from}, past the end of the log ({high}): \
         the topic was recreated or truncated; clear the checkpoints (table checkpoints) to start over"
    )]
    AheadOfLog { partition: i32, replay_from: i64, high: i64 },
}

/// Checks every replay offset against what the brokers still retain. A replay offset below
/// a partition's low watermark is an error unless `accept_loss`, in which case it moves up
/// to the low watermark (loudly); one past the end of the log is always an error.
pub fn check_retention(kafka: &KafkaConfig, replay_from: &mut BTreeMap<i32, i64>, accept_loss: bool) -> Result<(), KafkaSourceError> {
    let consumer: BaseConsumer = client_config(kafka, Role::Admin).create()?;
    for (&partition, offset) in replay_from.iter_mut() {
        let (low, high) = consumer.fetch_watermarks(&kafka.topic, partition, METADATA_TIMEOUT)?;
        if *offset > high {
            return Err(KafkaSourceError::AheadOfLog { partition, replay_from: *offset, high });
        }
        if *offset < low {
            let lost = low - *offset;
            if !accept_loss {
                return Err(KafkaSourceError::RetentionLoss { partition, replay_from: *offset, low, lost });
            }
            error!(partition, replay_from = *offset, low, lost, "retention deleted messages the replay needed; continuing from the low watermark as --accept-data-loss asks");
            *offset = low;
        }
    }
    Ok(())
}

/// Number of partitions of `topic`.
pub fn partition_count(kafka: &KafkaConfig) -> Result<usize, KafkaSourceError> {
    let consumer: BaseConsumer = client_config(kafka, Role::Admin).create()?;
    let metadata = consumer.fetch_metadata(Some(&kafka.topic), METADATA_TIMEOUT)?;
    let topic = metadata.topics().iter().find(|t| t.name() == kafka.topic);
    match topic {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len()),
        _ => Err(KafkaSourceError::NoTopic { topic: kafka.topic.clone(), brokers: kafka.brokers.clone() }),
    }
}

/// The partitions global worker `worker` of `workers` reads.
pub fn partitions_for(worker: usize, workers: usize, partitions: usize) -> Vec<i32> {
    (0..partitions).filter(|p| p % workers == worker).map(|p| p as i32).collect()
}

/// The source consumer's callbacks. With `enable.partition.eof`, librdkafka reports reaching
/// the end of a partition both as an event from `poll` (which the reader acts on) and through
/// the global error callback, whose default logs it at ERROR once per fetch of an idle
/// partition; it is routine, so it is logged at DEBUG and every other error as before.
pub struct SourceContext;

impl ClientContext for SourceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // It arrives as `Global(PartitionEOF)` here, as `PartitionEOF(p)` from `poll`.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            debug!(reason, "librdkafka: end of partition");
        } else {
            error!(error = %error, reason, "librdkafka error");
        }
    }
}

impl ConsumerContext for SourceContext {}

pub struct KafkaReader {
    consumer: BaseConsumer<SourceContext>,
    partitions: Vec<i32>,
    at_end: BTreeSet<i32>,
    /// Finish once every partition has reached its end (backfills and tests).
    exit_at_end: bool,
}

impl KafkaReader {
    /// Reads `partitions`, each from its offset, or from `[kafka] start` when it has none.
    pub fn new(kafka: &KafkaConfig, starts: &[(i32, Option<i64>)], exit_at_end: bool) -> Result<Self, KafkaSourceError> {
        let consumer: BaseConsumer<SourceContext> = client_config(kafka, Role::Consumer).create_with_context(SourceContext)?;
        let mut assignment = TopicPartitionList::new();
        let configured = match kafka.start {
            StartPosition::Earliest => Offset::Beginning,
            StartPosition::Latest => Offset::End,
        };
        for &(partition, offset) in starts {
            assignment.add_partition_offset(&kafka.topic, partition, offset.map_or(configured, Offset::Offset))?;
        }
        let partitions: Vec<i32> = starts.iter().map(|(p, _)| *p).collect();
        consumer.assign(&assignment)?;
        info!(topic = %kafka.topic, ?starts, "kafka source assigned");
        Ok(KafkaReader { consumer, partitions, at_end: BTreeSet::new(), exit_at_end })
    }
}

impl Reader for KafkaReader {
    fn read(&mut self, ingest: &mut Ingest, budget: usize) -> ReadStatus {
        if self.partitions.is_empty() {
            return ReadStatus::Finished;
        }
        let mut read = 0;
        while read < budget {
            match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(message)) => {
                    read += 1;
                    let partition = message.partition();
                    self.at_end.remove(&partition);
                    ingest.ingest(partition, message.offset(), message.payload().unwrap_or(&[]));
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    debug!(partition, "partition at end of log");
                    self.at_end.insert(partition);
                    ingest.mark_end_of_log(partition, unix_now_secs());
                }
                Some(Err(err)) => {
                    // Broker outages and the like: librdkafka reconnects by itself; we wait.
                    warn!(error = %err, "kafka consumer error");
                    break;
                }
            }
        }
        if self.exit_at_end && self.at_end.len() == self.partitions.len() {
            info!(partitions = ?self.partitions, "all partitions at end of log; source finished");
            return ReadStatus::Finished;
        }
        if read == budget { ReadStatus::More } else { ReadStatus::Idle }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_round_robin_over_workers() {
        assert_eq!(partitions_for(0, 2, 4), vec![0, 2]);
        assert_eq!(partitions_for(1, 2, 4), vec![1, 3]);
        assert_eq!(partitions_for(2, 3, 4), vec![2]);
        assert!(partitions_for(4, 5, 4).is_empty());
    }
}
