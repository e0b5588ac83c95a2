#!/usr/bin/env python3
"""Kafka test fixture for the vigil kafka collector (tests/collect_kafka.rs and
scripts/bench/collect_kafka.sh), with kafka-python against tansu 0.6.0.

usage: kafka_lag_fixture.py BOOTSTRAP COMMAND ARGS...
  create TOPIC PARTITIONS           create a topic and wait until its metadata shows
  produce TOPIC N                   N records, round-robin over partitions, one record per batch
                                    (tansu ListOffsets quirk, see scripts/kafka_smoke.py)
  produce-batch TOPIC N             N records in ONE batch to partition 0 (shows the quirk)
  consume TOPIC GROUP M             read M records with GROUP and commit exactly what was read;
                                    prints the committed offsets as JSON {"partition": offset}
  hold TOPIC GROUP SECONDS          join GROUP, poll, never commit, stay SECONDS, leave
  groups TOPIC PREFIX COUNT         COUNT groups PREFIX-0.. each commit offset 0 on every partition
  commit TOPIC GROUP PARTITION OFFSET  commit one offset for one partition (no consumption)
  end-offsets TOPIC                 prints {"partition": end offset} as kafka-python sees them
"""
import json
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

CLIENT = {"client_id": "vigil-kafka-test", "request_timeout_ms": 30000}


def create(bootstrap, topic, partitions):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **CLIENT)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    deadline = time.time() + 20
    while True:
        meta = admin.describe_topics([topic])
        if meta and len(meta[0].get("partitions", [])) == partitions:
            break
        if time.time() > deadline:
            raise SystemExit(f"topic {topic}: metadata says {meta}")
        time.sleep(0.2)
    admin.close()


def produce(bootstrap, topic, n, one_batch=False):
    if one_batch:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=1000,
                                 batch_size=1 << 20, **CLIENT)
        futures = [producer.send(topic, value=b"m%d" % i, partition=0) for i in range(n)]
        producer.flush()
        for f in futures:
            f.get(timeout=10)
    else:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0, batch_size=1,
                                 **CLIENT)
        parts = sorted(producer.partitions_for(topic))
        for i in range(n):
            producer.send(topic, value=b"m%d" % i, partition=parts[i % len(parts)]).get(timeout=10)
            producer.flush()
    producer.close()


def consume(bootstrap, topic, group, m):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, **CLIENT)
    consumer.subscribe([topic])
    positions = {}
    got = 0
    deadline = time.time() + 60
    while got < m and time.time() < deadline:
        for tp, records in consumer.poll(timeout_ms=1000, max_records=m - got).items():
            for rec in records:
                if got >= m:
                    break
                positions[tp] = rec.offset + 1
                got += 1
    if got < m:
        raise SystemExit(f"consumed {got} of {m}")
    if positions:
        consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in positions.items()})
    committed = {}
    for p in consumer.partitions_for_topic(topic) or []:
        c = consumer.committed(TopicPartition(topic, p))
        if c is not None:
            committed[str(p)] = c
    consumer.close()
    print(json.dumps(committed))


def hold(bootstrap, topic, group, seconds):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, **CLIENT)
    consumer.subscribe([topic])
    end = time.time() + seconds
    announced = False
    while time.time() < end:
        consumer.poll(timeout_ms=500)
        if consumer.assignment() and not announced:
            print("assigned", flush=True)
            announced = True
    consumer.close(autocommit=False)


def groups(bootstrap, topic, prefix, count):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **CLIENT)
    parts = sorted(consumer.partitions_for_topic(topic) or [])
    consumer.close()
    for g in range(count):
        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"{prefix}-{g}", enable_auto_commit=False,
                          **CLIENT)
        c.assign([TopicPartition(topic, p) for p in parts])
        c.commit({TopicPartition(topic, p): OffsetAndMetadata(0, "", -1) for p in parts})
        c.close(autocommit=False)


def commit(bootstrap, topic, group, partition, offset):
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **CLIENT)
    tp = TopicPartition(topic, partition)
    c.assign([tp])
    c.commit({tp: OffsetAndMetadata(offset, "", -1)})
    c.close(autocommit=False)


def end_offsets(bootstrap, topic):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **CLIENT)
    tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    print(json.dumps({str(tp.partition): o for tp, o in consumer.end_offsets(tps).items()}))
    consumer.close()


def main():
    bootstrap, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "create":
        create(bootstrap, args[0], int(args[1]))
    elif cmd == "produce":
        produce(bootstrap, args[0], int(args[1]))
    elif cmd == "produce-batch":
        produce(bootstrap, args[0], int(args[1]), one_batch=True)
    elif cmd == "consume":
        consume(bootstrap, args[0], args[1], int(args[2]))
    elif cmd == "hold":
        hold(bootstrap, args[0], args[1], float(args[2]))
    elif cmd == "groups":
        groups(bootstrap, args[0], args[1], int(args[2]))
    elif cmd == "commit":
        commit(bootstrap, args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "end-offsets":
        end_offsets(bootstrap, args[0])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
