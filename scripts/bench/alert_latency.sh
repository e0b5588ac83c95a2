#!/usr/bin/env bash
# Detection-to-delivery latency: from the moment the demo service's error rate jumps to the
# moment a webhook receiver gets the page, for Vigil and for Prometheus + Alertmanager watching
# the same target with the same SLO as Sloth-style rules.
#
#   scripts/bench/alert_latency.sh
#
# Per run, everything starts fresh (new data directories):
# - a webhook receiver (alert_latency.py receiver) that timestamps each alert on arrival;
# - Vigil (release) with its built-in demo service, the default demo SLOs (rules/demo.yaml) and
#   the default demo alerting (alerts/demo.yaml: group_wait 10s), its webhook pointed at the
#   receiver's /vigil; defaults: demo scraped every 5s, evaluation every 10s;
# - Prometheus scraping the same demo target (Vigil's demo listener) every 5s and evaluating,
#   every 10s, the Sloth-style rules of the demo availability SLO (99.5%, 30d) that
#   scripts/bench/slo_rules.py writes (rewritten for the demo's selectors by alert_latency.py);
# - Alertmanager with the same route timers (group_by alertname/service/slo-ish, group_wait 10s),
#   its webhook at the receiver's /alertmanager.
# After WARMUP seconds without errors (so that no tier fires before the jump and the page is the
# first notification of its group), the error rate is set to RATE with POST /demo/error-rate; the latency of each peer is the first arrival of a firing
# severity=page alert minus the time of that POST. Both peers see the same jump.
#
# Bound for Vigil: one scrape interval + one evaluation interval + group_wait = 5 + 10 + 10 s
# (plus the time the 1h window needs to cross 14.4x, which is what WARMUP and RATE set: with
# RATE 1 and 30 s of clean traffic, the 1h error ratio crosses 7.2% after ~2.3 s). Vigil's
# tiers of the same SLO inhibit each other, so the page is its only notification; Alertmanager
# sends Sloth's page and ticket alerts together.
#
# Environment (defaults in brackets):
#   VIGIL_BIN [${CARGO_TARGET_DIR:-target}/release/vigil, built if missing]   RUNS [5]
#   WARMUP [30] s before the jump   RATE [1.0] error rate after the jump   TIMEOUT [120] s
#   PORT_BASE [61400]: receiver +0, Vigil API +1, demo +2, Prometheus +3, Alertmanager +4/+5
#   KEEP_WORKDIR=1 keep the temp dir
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
BENCH_NAME=alert_latency
# shellcheck source=scripts/bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

RUNS=${RUNS:-5}
WARMUP=${WARMUP:-30}
RATE=${RATE:-1.0}
TIMEOUT=${TIMEOUT:-120}
PORT_BASE=${PORT_BASE:-61400}
RCV_PORT=$PORT_BASE
VIGIL_PORT=$((PORT_BASE + 1))
DEMO_PORT=$((PORT_BASE + 2))
PROM_PORT=$((PORT_BASE + 3))
AM_PORT=$((PORT_BASE + 4))
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
ALERTMANAGER=${ALERTMANAGER:-/usr/bin/prometheus-alertmanager}
VIGIL_BIN=${VIGIL_BIN:-}

[ -x "$PROMETHEUS" ] || die "$PROMETHEUS not found; install Debian's prometheus"
[ -x "$ALERTMANAGER" ] || die "$ALERTMANAGER not found; install Debian's prometheus-alertmanager"
if [ -z "$VIGIL_BIN" ]; then
  VIGIL_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/vigil"
  [ -x "$VIGIL_BIN" ] || (cd "$REPO" && cargo build --release --locked --bin vigil >&2)
fi
for p in $RCV_PORT $VIGIL_PORT $DEMO_PORT $PROM_PORT $AM_PORT $((AM_PORT + 1)); do
  port_open "$p" && die "port $p is in use; set PORT_BASE"
done

WORK=$(mktemp -d /tmp/vigil-bench-alert-latency.XXXXXX)
mkdir -p "$WORK/logs"
RCV_LOG="$WORK/arrivals.jsonl"
RESULTS="$WORK/results.txt"
: >"$RESULTS"
python3 "$SCRIPT_DIR/alert_latency.py" rules "$SCRIPT_DIR/slo_rules.py" "$WORK/sloth.rules.yml"

start_bg receiver python3 "$SCRIPT_DIR/alert_latency.py" receiver "$RCV_PORT" "$RCV_LOG"
RCV_PID=$LAST_PID
for ((i = 0; i < 100; i++)); do port_open "$RCV_PORT" && break; sleep 0.1; done

# The default demo alerting, with its webhook pointed at the receiver.
sed "s#http://127.0.0.1:9799/demo/webhook#http://127.0.0.1:$RCV_PORT/vigil#" \
  "$REPO/alerts/demo.yaml" >"$WORK/alerts.yaml"
grep -q "$RCV_PORT/vigil" "$WORK/alerts.yaml" || die "alerts/demo.yaml changed: no demo webhook url to rewrite"

cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  evaluation_interval: 10s
rule_files: ['$WORK/sloth.rules.yml']
alerting:
  alertmanagers:
    - static_configs: [{targets: ['127.0.0.1:$AM_PORT']}]
scrape_configs:
  - job_name: demo
    static_configs: [{targets: ['127.0.0.1:$DEMO_PORT']}]
EOF

# Alertmanager with the timers of alerts/demo.yaml.
cat >"$WORK/alertmanager.yml" <<EOF
route:
  receiver: bench
  group_by: [alertname, sloth_service, sloth_slo]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: bench
    webhook_configs:
      - url: http://127.0.0.1:$RCV_PORT/alertmanager
        send_resolved: true
EOF

run_once() {
  local run=$1
  local dir="$WORK/run$run"
  mkdir -p "$dir"
  cat >"$dir/vigil.yaml" <<EOF
agent:
  listen: 127.0.0.1:$VIGIL_PORT
  data_dir: $dir/vigil-data
  evaluation_interval: 10s
demo:
  enabled: true
  listen: 127.0.0.1:$DEMO_PORT
  requests_per_second: 20
  error_rate: 0
scrape:
  interval: 15s
  targets:
    - job: demo
      urls: [http://127.0.0.1:$DEMO_PORT/metrics]
      interval: 5s
rules: ['$REPO/rules/demo.yaml']
alerts: ['$WORK/alerts.yaml']
EOF
  start_bg "vigil-$run" "$VIGIL_BIN" run --config "$dir/vigil.yaml"
  local vigil=$LAST_PID
  wait_http "vigil-$run" "$vigil" "http://127.0.0.1:$VIGIL_PORT/readyz"
  start_bg "alertmanager-$run" "$ALERTMANAGER" --config.file="$WORK/alertmanager.yml" \
    --storage.path="$dir/am-data" --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address=
  local am=$LAST_PID
  wait_http "alertmanager-$run" "$am" "http://127.0.0.1:$AM_PORT/-/ready"
  start_bg "prometheus-$run" "$PROMETHEUS" --config.file="$WORK/prometheus.yml" \
    --storage.tsdb.path="$dir/prom-data" --web.listen-address="127.0.0.1:$PROM_PORT"
  local prom=$LAST_PID
  wait_http "prometheus-$run" "$prom" "http://127.0.0.1:$PROM_PORT/-/ready"

  nap "$WARMUP"
  local jump
  jump=$(python3 -c 'import time; print(f"{time.time():.3f}")')
  curl -fsS -o /dev/null -XPOST "http://127.0.0.1:$VIGIL_PORT/demo/error-rate" -d "$RATE" ||
    die "POST /demo/error-rate failed"
  local v="" p="" t
  for ((t = 0; t < TIMEOUT * 2; t++)); do
    [ -n "$v" ] || v=$(python3 "$SCRIPT_DIR/alert_latency.py" first "$RCV_LOG" /vigil "$jump")
    [ -n "$p" ] || p=$(python3 "$SCRIPT_DIR/alert_latency.py" first "$RCV_LOG" /alertmanager "$jump")
    [ -n "$v" ] && [ -n "$p" ] && break
    nap 0.5
  done
  say "run $run: vigil ${v:-timeout} s, prometheus+alertmanager ${p:-timeout} s"
  [ -n "$v" ] && echo "vigil $run $v" >>"$RESULTS"
  [ -n "$p" ] && echo "prometheus+alertmanager $run $p" >>"$RESULTS"
  for pid in "$prom" "$am" "$vigil"; do stop_pid "$pid"; forget_pid "$pid"; done
}

for ((r = 1; r <= RUNS; r++)); do run_once "$r"; done
stop_pid "$RCV_PID"

echo "vigil: $("$VIGIL_BIN" --version 2>&1 | head -1); prometheus: $("$PROMETHEUS" --version 2>&1 | head -1); alertmanager: $("$ALERTMANAGER" --version 2>&1 | head -1)"
echo "warmup ${WARMUP}s without errors, then ${RATE} error rate; scrape 5s, evaluation 10s, group_wait 10s; bound for Vigil 25 s"
python3 "$SCRIPT_DIR/alert_latency.py" summary "$RESULTS"
