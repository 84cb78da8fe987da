//! Kafka reader: manual assignment, partition p to global worker p mod workers; no consumer
//! group, no offset commits (progress is kept with the results). Messages are parsed in
//! place from librdkafka's buffers.

use std::collections::BTreeSet;
use std::time::Duration;

use dataflows::ingest::Ingest;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info, warn};

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

pub struct KafkaReader {
    consumer: BaseConsumer,
    partitions: Vec<i32>,
    at_end: BTreeSet<i32>,
    /// Finish once every partition has reached its end (backfills and tests).
    exit_at_end: bool,
}

impl KafkaReader {
    pub fn new(kafka: &KafkaConfig, partitions: Vec<i32>, exit_at_end: bool) -> Result<Self, KafkaSourceError> {
        let consumer: BaseConsumer = client_config(kafka, Role::Consumer).create()?;
        let mut assignment = TopicPartitionList::new();
        let start = match kafka.start {
            StartPosition::Earliest => Offset::Beginning,
            StartPosition::Latest => Offset::End,
        };
        for &partition in &partitions {
            assignment.add_partition_offset(&kafka.topic, partition, start)?;
        }
        consumer.assign(&assignment)?;
        info!(topic = %kafka.topic, ?partitions, "kafka source assigned");
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
