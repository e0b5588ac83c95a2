#!/usr/bin/env bash
# External metrics API benchmark: latency and throughput of one HPA value request served by
# Vigil (GET /apis/external.metrics.k8s.io/v1beta1/namespaces/default/demo-requests over TLS with
# a bearer token) vs the Prometheus instant query prometheus-adapter runs for the same value on
# every HPA request (sum(http_requests_total{job="demo"})), side by side with ratios.
#
#   scripts/bench/hpa.sh
#
# Vigil runs its demo service and scrapes it every second; a private Prometheus scrapes the same
# demo endpoint every second. wrk drives each endpoint in turn for DURATION seconds with CONNS
# connections on THREADS threads (TLS for Vigil; wrk does not verify certificates). Nothing
# here asserts timings: it measures and prints.
#
# Environment (defaults in brackets):
#   VIGIL_BIN   [${CARGO_TARGET_DIR:-target}/release/vigil, built if missing]
#   WRK         [$VIGIL_TEST_WRK or wrk]     PROMETHEUS [/usr/bin/prometheus]
#   DURATION    s per run [20]   CONNS [4]   THREADS [2]   WARMUP s before measuring [15]
#   VIGIL_PORT, HPA_PORT, DEMO_PORT, PROM_PORT  [61899, 61943, 61898, 61990]
#   BENCH_OUT   also write the Markdown result here          KEEP_WORKDIR=1 keep the temp dir
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
BENCH_NAME=hpa
# shellcheck source=scripts/bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

if [ -f /tmp/vigil-test-services/env ]; then
  # shellcheck disable=SC1091
  . /tmp/vigil-test-services/env
fi
WRK=${WRK:-${VIGIL_TEST_WRK:-wrk}}
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
DURATION=${DURATION:-20}
CONNS=${CONNS:-4}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-15}
VIGIL_PORT=${VIGIL_PORT:-61899}
HPA_PORT=${HPA_PORT:-61943}
DEMO_PORT=${DEMO_PORT:-61898}
PROM_PORT=${PROM_PORT:-61990}
BENCH_OUT=${BENCH_OUT:-}
VIGIL_BIN=${VIGIL_BIN:-}

command -v "$WRK" >/dev/null || die "wrk not found (VIGIL_TEST_WRK); scripts/test-services.sh installs it"
[ -x "$PROMETHEUS" ] || die "$PROMETHEUS not found; install Debian's prometheus (scripts/test-services.sh does)"
if [ -z "$VIGIL_BIN" ]; then
  VIGIL_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/vigil"
  [ -x "$VIGIL_BIN" ] || (cd "$REPO" && cargo build --release --locked --bin vigil >&2)
fi

WORK=$(mktemp -d /tmp/vigil-bench-hpa.XXXXXX)
mkdir -p "$WORK/logs" "$WORK/data" "$WORK/prom"

cat >"$WORK/vigil.yaml" <<YAML
agent:
  listen: 127.0.0.1:$VIGIL_PORT
  data_dir: $WORK/data
  evaluation_interval: 10s
demo:
  enabled: true
  listen: 127.0.0.1:$DEMO_PORT
  requests_per_second: 50
scrape:
  targets:
    - job: demo
      urls: [http://127.0.0.1:$DEMO_PORT/metrics]
      interval: 1s
      timeout: 900ms
hpa:
  listen: 127.0.0.1:$HPA_PORT
  metrics:
    - name: demo-requests
      selector: http_requests_total{job="demo"}
      aggregate: sum
YAML
cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: [127.0.0.1:$DEMO_PORT]
YAML

say "starting vigil ($VIGIL_BIN)"
start_bg vigil "$VIGIL_BIN" run --config "$WORK/vigil.yaml"
VIGIL_PID=$LAST_PID
wait_http vigil "$VIGIL_PID" "http://127.0.0.1:$VIGIL_PORT/healthz"
start_bg prometheus "$PROMETHEUS" --config.file "$WORK/prometheus.yml" --storage.tsdb.path "$WORK/prom" \
  --web.listen-address "127.0.0.1:$PROM_PORT"
PROM_PID=$LAST_PID
wait_http prometheus "$PROM_PID" "http://127.0.0.1:$PROM_PORT/-/ready"

TOKEN=$(cat "$WORK/data/hpa-token")
HPA_URL="https://127.0.0.1:$HPA_PORT/apis/external.metrics.k8s.io/v1beta1/namespaces/default/demo-requests"
PROM_URL="http://127.0.0.1:$PROM_PORT/api/v1/query?query=sum(http_requests_total%7Bjob%3D%22demo%22%7D)"
say "warming up ${WARMUP}s"
nap "$WARMUP"
say "vigil answers:      $(curl -sS --cacert "$WORK/data/hpa-ca.crt" -H "Authorization: Bearer $TOKEN" "$HPA_URL")"
say "prometheus answers: $(curl -sS "$PROM_URL")"

# run_wrk NAME URL [wrk args...]: prints "p50_ms p99_ms req_per_s"
run_wrk() {
  local name=$1 url=$2; shift 2
  "$WRK" -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" >"$WORK/logs/wrk-$name.txt"
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
      return v
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $1 == "Requests/sec:" { rps = $2 }
    /Non-2xx/ { non2xx = $NF }
    END { printf "%.3f %.3f %.1f %s\n", p50, p99, rps, (non2xx == "" ? 0 : non2xx) }
  ' "$WORK/logs/wrk-$name.txt"
}

say "wrk: vigil (${DURATION}s, $CONNS connections, $THREADS threads)"
read -r V50 V99 VRPS VERR < <(run_wrk vigil "$HPA_URL" -H "Authorization: Bearer $TOKEN")
say "wrk: prometheus"
read -r P50 P99 PRPS PERR < <(run_wrk prometheus "$PROM_URL")
[ "$VERR" = 0 ] || die "vigil answered $VERR non-2xx responses (see $WORK/logs/wrk-vigil.txt)"
[ "$PERR" = 0 ] || die "prometheus answered $PERR non-2xx responses"

RESULT=$(awk -v v50="$V50" -v v99="$V99" -v vr="$VRPS" -v p50="$P50" -v p99="$P99" -v pr="$PRPS" \
  -v d="$DURATION" -v c="$CONNS" -v t="$THREADS" -v cpus="$(nproc)" 'BEGIN {
  printf "External metric value, %ss per run, %s connections, %s wrk threads, %s CPUs\n\n", d, c, t, cpus
  printf "| | vigil (HTTPS, token) | prometheus instant query | ratio |\n|---|---|---|---|\n"
  printf "| p50 latency | %.3f ms | %.3f ms | %.1fx lower |\n", v50, p50, (v50 > 0 ? p50 / v50 : 0)
  printf "| p99 latency | %.3f ms | %.3f ms | %.1fx lower |\n", v99, p99, (v99 > 0 ? p99 / v99 : 0)
  printf "| requests/s | %.0f | %.0f | %.1fx more |\n", vr, pr, (pr > 0 ? vr / pr : 0)
}')
printf '%s\n' "$RESULT"
if [ -n "$BENCH_OUT" ]; then printf '%s\n' "$RESULT" >"$BENCH_OUT"; fi
