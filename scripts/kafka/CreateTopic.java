// Creates a topic with a replication factor and min.insync.replicas, or checks that an existing
// one has them. Run by scripts/services.sh (`topic`) as a single-file program on the broker
// classpath: java -cp '.services/kafka-lib/*' CreateTopic.java BROKERS TOPIC PARTITIONS RF MIN_ISR
//
// A topic with replication factor 3 cannot be created until three brokers have registered, so
// "not enough brokers" is retried for up to 60 s. Exit 0: the topic is there as asked; 1: it
// could not be made, or it exists with other settings (the message says which).
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.TopicExistsException;

public class CreateTopic {
    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: CreateTopic BROKERS TOPIC PARTITIONS REPLICATION MIN_INSYNC_REPLICAS");
            System.exit(2);
        }
        String brokers = args[0], topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        short replication = Short.parseShort(args[3]);
        String minIsr = args[4];
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        try (Admin admin = Admin.create(props)) {
            NewTopic wanted = new NewTopic(topic, partitions, replication)
                .configs(Map.of("min.insync.replicas", minIsr));
            long deadline = System.currentTimeMillis() + 60_000;
            while (true) {
                try {
                    admin.createTopics(List.of(wanted)).all().get();
                    System.out.printf("kafka: created topic %s (%d partitions, replication %d, min.insync.replicas %s)%n",
                        topic, partitions, replication, minIsr);
                    return;
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof TopicExistsException) {
                        check(admin, topic, partitions, replication, minIsr);
                        return;
                    }
                    if (e.getCause() instanceof InvalidReplicationFactorException && System.currentTimeMillis() < deadline) {
                        Thread.sleep(500); // brokers still registering
                        continue;
                    }
                    System.err.println("services.sh: error: creating topic " + topic + ": " + e.getCause());
                    System.exit(1);
                }
            }
        }
    }

    static void check(Admin admin, String topic, int partitions, short replication, String minIsr) throws Exception {
        TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
        int rf = d.partitions().get(0).replicas().size();
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config config = admin.describeConfigs(List.of(res)).all().get().get(res);
        String isr = config.get("min.insync.replicas").value();
        if (d.partitions().size() != partitions || rf != replication || !isr.equals(minIsr)) {
            System.err.printf("services.sh: error: topic %s exists with %d partitions, replication %d, min.insync.replicas %s"
                + " (asked for %d, %d, %s); delete it or use another name%n",
                topic, d.partitions().size(), rf, isr, partitions, replication, minIsr);
            System.exit(1);
        }
    }
}
