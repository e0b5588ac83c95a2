#!/usr/bin/env bash
# SLO evaluation benchmark: CPU per evaluation round of Vigil's SLO engine vs Prometheus
# evaluating the same SLOs as Sloth-style recording rules, over the same data.
#
#   scripts/bench/slo.sh
#
# One local target (scripts/bench/slo_target.py) serves request counters of SERVICES services
# (2 series each). scripts/bench/slo_rules.py writes one 99.9%/30d availability SLO per service,
# once as a Vigil rules file and once as Sloth-style Prometheus rules (per SLO an SLI group with
# the 5m..3d error ratios and the 30d ratio, a meta group with budget and burn rates, and an
# alert group with the page and ticket burn-rate alerts: 15 recording rules and 2 alerts in 3
# groups per SLO; Vigil evaluates the same four tiers by default). Each peer runs twice, in turn: without rules (scraping
# only) and with them, both scraping and evaluating every INTERVAL. The CPU of the rules is the
# difference between the two runs; divided by the evaluation rounds in the window it gives the
# CPU per round. CPU is read twice: from /proc/PID/stat (utime+stime, 10 ms ticks, includes
# exited threads) and from /proc/PID/task/*/schedstat (nanoseconds, live threads only); the
# ratio uses schedstat. Nothing here asserts timings: it measures and prints.
#
# Caveat, in Prometheus' favour: its [30d] and [3d] ranges only hold WARMUP+MEASURE of data
# here; with a full month of samples each round reads far more. Vigil's round does not depend
# on the window length (it keeps minute and hour buckets).
#
# Environment (defaults in brackets):
#   VIGIL_BIN   [${CARGO_TARGET_DIR:-target}/release/vigil, built if missing]
#   SERVICES    SLOs [1000]        INTERVAL  scrape and evaluation interval, s [10]
#   WARMUP      s before the window [30]      MEASURE   s in the window [120]
#   PEERS       ["prometheus vigil"]          BENCH_OUT also write the Markdown result here
#   ALERTS      1: alert rules too (Sloth's page/ticket alerts; Vigil's default tiers) [0]
#   TARGET_PORT, VIGIL_PORT, PROM_PORT  [61180, 61899, 61190]   KEEP_WORKDIR=1 keep the temp dir
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
BENCH_NAME=slo
# shellcheck source=scripts/bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

SERVICES=${SERVICES:-1000}
ALERTS=${ALERTS:-0}
INTERVAL=${INTERVAL:-10}
WARMUP=${WARMUP:-30}
MEASURE=${MEASURE:-120}
PEERS=${PEERS:-"prometheus vigil"}
TARGET_PORT=${TARGET_PORT:-61180}
VIGIL_PORT=${VIGIL_PORT:-61899}
PROM_PORT=${PROM_PORT:-61190}
BENCH_OUT=${BENCH_OUT:-}
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
VIGIL_BIN=${VIGIL_BIN:-}

[ -x "$PROMETHEUS" ] || die "$PROMETHEUS not found; install Debian's prometheus (scripts/test-services.sh does)"
if [ -z "$VIGIL_BIN" ]; then
  VIGIL_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/vigil"
  [ -x "$VIGIL_BIN" ] || (cd "$REPO" && cargo build --release --locked --bin vigil >&2)
fi

WORK=$(mktemp -d /tmp/vigil-bench-slo.XXXXXX)
mkdir -p "$WORK/logs"
python3 "$SCRIPT_DIR/slo_rules.py" "$SERVICES" "$WORK/slos.yaml" "$WORK/sloth.rules.yml" \
  "$([ "$ALERTS" = 1 ] && echo alerts || echo none)"
start_bg target python3 "$SCRIPT_DIR/slo_target.py" "$TARGET_PORT" "$SERVICES"
wait_http target "$LAST_PID" "http://127.0.0.1:$TARGET_PORT/metrics"

# schedstat: sum of the run time (ns) of every live thread
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }

prom_config() { # rules?
  cat <<YAML
global: {scrape_interval: ${INTERVAL}s, evaluation_interval: ${INTERVAL}s}
scrape_configs:
  - job_name: slo-bench
    static_configs: [{targets: ['127.0.0.1:$TARGET_PORT']}]
YAML
  if [ "$1" = rules ]; then echo "rule_files: ['$WORK/sloth.rules.yml']"; fi
}

vigil_config() { # rules?
  cat <<YAML
agent:
  listen: 127.0.0.1:$VIGIL_PORT
  data_dir: $WORK/vigil-data-$1
  evaluation_interval: ${INTERVAL}s
scrape:
  targets:
    - job: slo-bench
      urls: ['http://127.0.0.1:$TARGET_PORT/metrics']
      interval: ${INTERVAL}s
YAML
  if [ "$1" = rules ]; then echo "rules: ['$WORK/slos.yaml']"; else echo "rules: []"; fi
}

# rounds so far: Prometheus counts iterations per group; Vigil counts rounds
rounds() { # peer
  case $1 in
    prometheus) curl -fsS "http://127.0.0.1:$PROM_PORT/metrics" |
      awk '/^prometheus_rule_group_iterations_total/ {s += $2; n++} END {if (n) printf "%.0f", s / n; else print 0}' ;;
    vigil) curl -fsS "http://127.0.0.1:$VIGIL_PORT/metrics" |
      awk '/^vigil_evaluation_rounds_total/ {s += $2} END {printf "%.0f", s}' ;;
  esac
}

declare -A TICKS NS ROUNDS
run_peer() { # peer mode
  local peer=$1 mode=$2 pid url
  case $peer in
    prometheus)
      prom_config "$mode" >"$WORK/prometheus-$mode.yml"
      start_bg "prometheus-$mode" "$PROMETHEUS" --config.file="$WORK/prometheus-$mode.yml" \
        --storage.tsdb.path="$WORK/prom-data-$mode" --web.listen-address="127.0.0.1:$PROM_PORT"
      url="http://127.0.0.1:$PROM_PORT/-/ready" ;;
    vigil)
      vigil_config "$mode" >"$WORK/vigil-$mode.yaml"
      start_bg "vigil-$mode" "$VIGIL_BIN" run --config "$WORK/vigil-$mode.yaml"
      url="http://127.0.0.1:$VIGIL_PORT/healthz" ;;
  esac
  pid=$LAST_PID
  wait_http "$peer-$mode" "$pid" "$url"
  say "$peer ($mode): warm-up ${WARMUP}s, window ${MEASURE}s"
  nap "$WARMUP"
  local t0 n0 r0 t1 n1 r1
  t0=$(cpu_ticks "$pid"); n0=$(cpu_ns "$pid"); r0=$(rounds "$peer")
  nap "$MEASURE"
  t1=$(cpu_ticks "$pid"); n1=$(cpu_ns "$pid"); r1=$(rounds "$peer")
  pid_alive "$pid" || die "$peer died during the window (see $WORK/logs/$peer-$mode.log)"
  stop_pid "$pid"; forget_pid "$pid"
  TICKS[$peer.$mode]=$((t1 - t0)); NS[$peer.$mode]=$((n1 - n0)); ROUNDS[$peer.$mode]=$((r1 - r0))
}

for peer in $PEERS; do
  run_peer "$peer" base
  run_peer "$peer" rules
done

HZ=$(getconf CLK_TCK)
{
  echo "SLOs: $SERVICES (Sloth-style for Prometheus: 15 recording rules in 2 groups each$([ "$ALERTS" = 1 ] && echo ", plus 2 alerts in a third group; Vigil with its default alert tiers")); interval ${INTERVAL}s; window ${MEASURE}s"
  echo "vigil: $("$VIGIL_BIN" --version 2>&1 | head -1); prometheus: $("$PROMETHEUS" --version 2>&1 | head -1)"
  echo "machine: $(nproc) CPUs, load at end $(load1)"
  echo
  echo "| peer | rounds | CPU base (ms, schedstat) | CPU with SLOs (ms) | SLO CPU per round (ms, schedstat) | same from /proc/stat ticks (ms) |"
  echo "|---|---|---|---|---|---|"
  declare -A PER
  for peer in $PEERS; do
    r=${ROUNDS[$peer.rules]}; [ "$r" -gt 0 ] || r=1
    PER[$peer]=$(awk -v a="${NS[$peer.rules]}" -v b="${NS[$peer.base]}" -v r="$r" 'BEGIN {printf "%.3f", (a - b) / r / 1e6}')
    ticks=$(awk -v a="${TICKS[$peer.rules]}" -v b="${TICKS[$peer.base]}" -v r="$r" -v hz="$HZ" 'BEGIN {printf "%.3f", (a - b) * 1000 / hz / r}')
    printf '| %s | %s | %.0f | %.0f | %s | %s |\n' "$peer" "${ROUNDS[$peer.rules]}" \
      "$(awk -v n="${NS[$peer.base]}" 'BEGIN {print n / 1e6}')" "$(awk -v n="${NS[$peer.rules]}" 'BEGIN {print n / 1e6}')" \
      "${PER[$peer]}" "$ticks"
  done
  if [ -n "${PER[prometheus]:-}" ] && [ -n "${PER[vigil]:-}" ]; then
    echo
    awk -v p="${PER[prometheus]}" -v v="${PER[vigil]}" 'BEGIN {
      if (v <= 0) { print "Vigil per-round CPU is below the resolution of this run; raise MEASURE"; exit }
      r = p / v; printf "Prometheus/Vigil CPU per round = %.0fx (target >= 100x: %s)\n", r, (r >= 100 ? "met" : "NOT met") }'
  fi
} | tee "${BENCH_OUT:-/dev/null}"
