#!/usr/bin/env python3
"""Kafka smoke check against the test broker (tansu 0.6.0) with kafka-python.

usage: kafka_smoke.py [--probe] [BOOTSTRAP]     (default BOOTSTRAP: $VIGIL_TEST_KAFKA_BROKERS)

--probe: only a metadata request (used by scripts/test-services.sh as the readiness check).
Otherwise: create a 3-partition topic, produce to every partition, consume everything with a
consumer group that commits, check the committed offsets, delete the topic.

tansu quirk: ListOffsets(latest) answers the last *batch's* base offset + 1, so producers must
send one record per batch (batch_size=1, linger_ms=0), otherwise end offsets are wrong.
"""
import os
import sys
import time
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

# Settings that work against tansu 0.6.0 (see docs/test-services.md).
CLIENT = {
    "client_id": "vigil-smoke",
    "request_timeout_ms": 30000,
}
PRODUCER = {
    "acks": 1,
    "batch_size": 1,  # one record per batch: tansu ListOffsets quirk
    "linger_ms": 0,
    "retries": 3,
}


def probe(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **CLIENT)
    try:
        admin.list_topics()
        brokers = admin.describe_cluster()["brokers"]
        assert brokers, "no brokers in metadata"
    finally:
        admin.close()


def smoke(bootstrap):
    t0 = time.time()
    topic = "vigil-smoke-" + uuid.uuid4().hex[:8]
    group = topic + "-group"
    partitions = 3
    per_partition = 4

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **CLIENT)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    deadline = time.time() + 20
    while True:
        meta = admin.describe_topics([topic])
        parts = meta[0].get("partitions", []) if meta else []
        if len(parts) == partitions:
            break
        if time.time() > deadline:
            raise SystemExit(f"topic {topic}: expected {partitions} partitions, metadata says {meta}")
        time.sleep(0.2)
    print(f"created topic {topic} with {partitions} partitions")

    producer = KafkaProducer(bootstrap_servers=bootstrap, **CLIENT, **PRODUCER)
    sent = set()
    for p in range(partitions):
        for i in range(per_partition):
            value = f"p{p}-m{i}".encode()
            md = producer.send(topic, key=b"k%d" % i, value=value, partition=p).get(timeout=10)
            assert md.partition == p, md
            sent.add(value)
    producer.flush()
    producer.close()
    print(f"produced {len(sent)} messages")

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
        **CLIENT,
    )
    got = set()
    deadline = time.time() + 60
    while got != sent and time.time() < deadline:
        for batch in consumer.poll(timeout_ms=1000).values():
            for rec in batch:
                got.add(rec.value)
    if got != sent:
        raise SystemExit(f"consumed {len(got)}/{len(sent)} messages; missing {sorted(sent - got)}")
    consumer.commit()
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    committed = {tp.partition: consumer.committed(tp) for tp in tps}
    ends = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    consumer.close()
    print(f"consumed {len(got)} messages with group {group}; committed {committed}; end offsets {ends}")
    for p in range(partitions):
        if committed[p] != per_partition or ends[p] != per_partition:
            raise SystemExit(f"partition {p}: committed {committed[p]}, end offset {ends[p]}, expected {per_partition}")

    # the committed offsets are visible to a fresh client (group coordinator really stored them)
    if hasattr(admin, "list_consumer_group_offsets"):  # kafka-python 2.x
        admin_offsets = admin.list_consumer_group_offsets(group)
    else:  # kafka-python 3.x renamed it
        admin_offsets = admin.list_group_offsets({group: None})[group]
    if {tp.partition: om.offset for tp, om in admin_offsets.items()} != committed:
        raise SystemExit(f"admin sees group offsets {admin_offsets}, consumer committed {committed}")
    admin.delete_topics([topic])
    admin.close()
    print(f"kafka smoke ok in {time.time() - t0:.1f}s")


def main():
    args = sys.argv[1:]
    probe_only = "--probe" in args
    args = [a for a in args if a != "--probe"]
    bootstrap = args[0] if args else os.environ.get("VIGIL_TEST_KAFKA_BROKERS", "127.0.0.1:59092")
    if probe_only:
        probe(bootstrap)
    else:
        smoke(bootstrap)


if __name__ == "__main__":
    main()
