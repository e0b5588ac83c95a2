#!/usr/bin/env bash
# Redis collector benchmark: CPU time, wall time, commands and connections per collection of
# vigil's redis collector vs the Debian redis_exporter 1.45, both collecting the same private
# redis-server (same keyspace, same key checks) in the same run, one after the other.
#
#   scripts/bench/collect_redis.sh [SECONDS_PER_PHASE]        (default 30)
#
# needs: the test services env (scripts/test-services.sh: redis-server, redis_exporter) and a
# built vigil (VIGIL_BIN, default $CARGO_TARGET_DIR/debug/vigil or target/debug/vigil).
# Process CPU comes from /proc/<pid>/stat (utime+stime); vigil's idle CPU (same config without
# the collector) is measured too and subtracted. Commands and connections come from INFO
# deltas on the private server. Results are printed as a table with vigil/exporter ratios.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
STATE=${VIGIL_TEST_STATE_DIR:-/tmp/vigil-test-services}
# shellcheck disable=SC1091
[ -f "$STATE/env" ] && . "$STATE/env"
: "${VIGIL_TEST_REDIS_SERVER:?start the test services: scripts/test-services.sh}"
: "${VIGIL_TEST_REDIS_EXPORTER:?start the test services: scripts/test-services.sh}"
VIGIL_BIN=${VIGIL_BIN:-${CARGO_TARGET_DIR:-target}/debug/vigil}
[ -x "$VIGIL_BIN" ] || { echo "no vigil binary at $VIGIL_BIN; cargo build first" >&2; exit 1; }
PY=${VIGIL_TEST_PYTHON:-python3}
command -v "$PY" >/dev/null || PY=python3
exec "$PY" scripts/bench/collect_redis.py \
  --vigil "$VIGIL_BIN" --redis-server "$VIGIL_TEST_REDIS_SERVER" \
  --exporter "$VIGIL_TEST_REDIS_EXPORTER" --seconds "${1:-30}"
