//! Every Kafka client edgeflow creates is configured here, so the defaults and the reasons
//! for them sit in one place.

use rdkafka::config::ClientConfig;

use crate::config::KafkaConfig;

/// What a client is for; each gets the settings its role needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The job's per-worker consumer.
    Consumer,
    /// `edgeflow gen` and test producers.
    Producer,
    /// Topic administration and metadata.
    Admin,
}

pub fn client_config(kafka: &KafkaConfig, role: Role) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", &kafka.client_id)
        // IPv4 loopback first: librdkafka may try ::1 for `localhost` and wait on it.
        .set("broker.address.family", "v4");
    match role {
        Role::Consumer => {
            config
                // Partitions are assigned by hand (worker = partition mod workers); the group
                // id is required by librdkafka but no group coordination or commit is used:
                // progress lives in MySQL, committed with the results.
                .set("group.id", format!("{}-unused", kafka.client_id))
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                // End-of-partition events tell the source a partition is caught up (idleness,
                // and `--exit-at-end`).
                .set("enable.partition.eof", "true")
                // Resuming below retention must be an error, never a silent skip.
                .set("auto.offset.reset", "error")
                // Larger fetches: the job is throughput-bound and parses in place. The prefetch
                // queue is bounded at 64 MiB per consumer (one per worker): the sources are
                // paced (see `source::Pacing`), and 256 MiB let a backfill prefetch most of a
                // 1 M-line topic (peak RSS 447 MB in benches/e2e.sh).
                .set("fetch.max.bytes", "52428800")
                .set("max.partition.fetch.bytes", "8388608")
                .set("queued.max.messages.kbytes", "65536");
        }
        Role::Producer => {
            config
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("linger.ms", "20")
                .set("batch.size", "1000000")
                .set("compression.type", "lz4")
                .set("queue.buffering.max.kbytes", "1048576");
        }
        Role::Admin => {}
    }
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}
