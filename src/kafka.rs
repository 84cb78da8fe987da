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
                // Larger fetches and a deep prefetch: the job is throughput-bound and drains a
                // partition's queue faster than one fetch round trip refills it. Measured on a
                // pre-filled 4-partition topic of 1 M lines, 2 workers, --sink null: 4.6 s with
                // librdkafka's queued.min.messages (100 k), 2.5 s with 1 M. The queue is capped
                // at 64 MiB per partition (peak RSS ~515 MB there); 128 MiB ran in 1.8 s at
                // ~620 MB, so a backfill host with memory to spare can raise it in
                // `[kafka.properties]`.
                .set("fetch.max.bytes", "52428800")
                .set("max.partition.fetch.bytes", "8388608")
                .set("queued.min.messages", "1000000")
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
