#!/usr/bin/env bash
# Benchmark of the kafka collector: requests to the broker and wall time per collection for 1, 10
# and 100 consumer groups over one topic of 100 partitions, against the requests kafka_exporter's
# per-group approach would send for the same cluster (computed; see docs/collectors-kafka.md).
#
# usage: scripts/bench/collect_kafka.sh [GROUP_COUNTS...]      (default: 1 10 100)
# needs: the test services (scripts/test-services.sh: tansu + python with kafka-python) and a
# built vigil (VIGIL_BIN, default $CARGO_TARGET_DIR/debug/vigil or target/debug/vigil).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
STATE=${VIGIL_TEST_STATE_DIR:-/tmp/vigil-test-services}
# shellcheck disable=SC1091
[ -f "$STATE/env" ] && . "$STATE/env"
: "${VIGIL_TEST_KAFKA_BROKERS:?start the test services: scripts/test-services.sh}"
: "${VIGIL_TEST_PYTHON:?start the test services: scripts/test-services.sh}"
VIGIL_BIN=${VIGIL_BIN:-${CARGO_TARGET_DIR:-target}/debug/vigil}
[ -x "$VIGIL_BIN" ] || { echo "no vigil binary at $VIGIL_BIN; cargo build first" >&2; exit 1; }
PARTITIONS=${PARTITIONS:-100}
COUNTS=("$@"); [ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1 10 100)
B=$VIGIL_TEST_KAFKA_BROKERS
PY=$VIGIL_TEST_PYTHON
FIX=scripts/kafka_lag_fixture.py
WORK=$(mktemp -d); DAEMON=
cleanup() { [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

topic=vigil-bench-$$-$RANDOM
"$PY" $FIX "$B" create "$topic" "$PARTITIONS"
"$PY" $FIX "$B" produce "$topic" "$PARTITIONS"
made=0
printf '%-7s %-11s %-10s %-22s %-12s %s\n' groups partitions brokers requests/collection wall_ms kafka_exporter_requests
for g in "${COUNTS[@]}"; do
  if [ "$g" -gt "$made" ]; then
    "$PY" $FIX "$B" groups "$topic" "$topic-g$made" $((g - made)) >/dev/null 2>&1 || true
    # groups are named PREFIX-i; create the missing ones with distinct prefixes
    made=$g
  fi
  cat >"$WORK/vigil.yaml" <<YAML
agent:
  listen: 127.0.0.1:0
  data_dir: $WORK/data
collectors:
  - name: bench
    type: kafka
    interval: 2s
    timeout: 2s
    brokers: ["$B"]
    topics: {include: ["$topic"]}
    groups: {include: ["$topic-.*"]}
YAML
  RUST_LOG=${RUST_LOG:-info} "$VIGIL_BIN" run --config "$WORK/vigil.yaml" >"$WORK/log" 2>&1 &
  DAEMON=$!
  url=
  for _ in $(seq 100); do
    url=$(grep -o 'listening on http://[0-9.:]*' "$WORK/log" | sed 's/listening on //' || true)
    [ -n "$url" ] && break; sleep 0.1
  done
  [ -n "$url" ] || { cat "$WORK/log" >&2; exit 1; }
  snap() { curl -s "$url/metrics" >"$WORK/$1"; }
  val() { awk -v p="$2" 'index($0, p) == 1 { print $NF; exit }' "$WORK/$1"; }
  total() { awk '/^vigil_kafka_requests_total\{/ && /instance="bench"/ { s += $NF } END { print s + 0 }' "$WORK/$1"; }
  # wait for 2 collections (connect + warm), then measure over 5 more
  for _ in $(seq 100); do snap a; c=$(val a 'vigil_collector_collections_total{collector="bench"'); [ "${c:-0}" -ge 2 ] && break; sleep 0.2; done
  c0=$(val a 'vigil_collector_collections_total{collector="bench"'); r0=$(total a)
  walls=()
  while :; do
    sleep 0.5; snap b
    c1=$(val b 'vigil_collector_collections_total{collector="bench"')
    if [ "$c1" -gt "$c0" ] && [ "${#walls[@]}" -lt $((c1 - c0)) ]; then
      walls+=("$(val b 'vigil_collector_duration_seconds{collector="bench"')")
    fi
    [ "$c1" -ge $((c0 + 5)) ] && break
  done
  r1=$(total b)
  groups_seen=$(grep -c '^kafka_consumergroup_members{' "$WORK/b" || true)
  brokers=$(val b 'kafka_brokers{')
  per=$(( (r1 - r0) / (c1 - c0) ))
  wall=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END { printf "%.1f", a[int((NR+1)/2)] * 1000 }')
  # kafka_exporter: Metadata + 2 ListOffsets per partition (newest, oldest; sarama GetOffset is
  # one request per partition) + per broker ListGroups and DescribeGroups + one OffsetFetch per group
  ke=$((1 + 2 * PARTITIONS + 2 * brokers + groups_seen))
  printf '%-7s %-11s %-10s %-22s %-12s %s\n' "$groups_seen" "$PARTITIONS" "$brokers" "$per" "$wall" "$ke"
  grep '^vigil_kafka_requests_total{' "$WORK/b" | sed 's/^/    /' >"$WORK/apis"
  [ -n "${VERBOSE:-}" ] && cat "$WORK/apis"
  [ -n "${VERBOSE:-}" ] && grep "kafka collection done" "$WORK/log" | tail -2
  kill "$DAEMON"; wait "$DAEMON" 2>/dev/null || true; DAEMON=
done
