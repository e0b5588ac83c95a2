#!/usr/bin/env bash
# Scrape-loop benchmark: CPU per million samples and scrape-time jitter of Vigil, vmagent and
# Prometheus (agent mode), side by side, on the same 100 local targets.
#
#   scripts/bench/scrape.sh
#
# Every target serves the 1,857-series Prometheus corpus (237 metric families of every type)
# from one local nginx; each peer scrapes the 100 targets every second (~185,700 samples/s),
# one peer at a time, for a warm-up and then a measured window. Reported per peer: scrapes and
# samples in the window (from nginx's access log), CPU seconds of the peer's process
# (utime+stime from /proc/PID/stat) and CPU seconds per million samples, RSS at the end, whether
# all targets are up, and the jitter of the scrape times: per target, |interval - 1 s| between
# consecutive requests as nginx saw them (p50 / p99 / max). Then Vigil/vmagent and
# Vigil/Prometheus ratios against the goals (at most 1/2 of vmagent's and 1/5 of Prometheus'
# CPU per sample). Nothing here asserts timings: it measures and prints.
#
# Environment (defaults in brackets):
#   VIGIL_BIN        Vigil binary [${CARGO_TARGET_DIR:-target}/release/vigil, built if missing]
#   RUNS             how many rounds of the three peers [2]
#   WARMUP           seconds before the window opens [10]
#   MEASURE          seconds in the window [60]
#   PEERS            which peers, in order ["vigil vmagent prometheus"]
#   TARGETS          number of targets [100]
#   CORPUS           exposition every target serves [/work/shared/corpus/prometheus-alltypes.237mfs.prom.txt]
#   NGINX_PORT, VIGIL_PORT, VMAGENT_PORT, PROM_PORT  [61080, 61799, 61429, 61090]
#   BENCH_OUT        also write the Markdown result to this file [unset]
#   KEEP_WORKDIR=1   keep the temp dir (configs, logs, access log) for inspection [unset]
#
# Needs nginx, prometheus (Debian 2.42: agent mode is --enable-feature=agent), vmagent (Debian
# victoria-metrics) and python3; as root it apt-get installs what is missing. All traffic stays
# on 127.0.0.1. Every process it starts, and its temp dir, is removed on exit, also on Ctrl-C.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
STATS="$SCRIPT_DIR/scrape_stats.py"

RUNS=${RUNS:-2}
WARMUP=${WARMUP:-10}
MEASURE=${MEASURE:-60}
PEERS=${PEERS:-"vigil vmagent prometheus"}
TARGETS=${TARGETS:-100}
CORPUS=${CORPUS:-/work/shared/corpus/prometheus-alltypes.237mfs.prom.txt}
NGINX_PORT=${NGINX_PORT:-61080}
VIGIL_PORT=${VIGIL_PORT:-61799}
VMAGENT_PORT=${VMAGENT_PORT:-61429}
PROM_PORT=${PROM_PORT:-61090}
BENCH_OUT=${BENCH_OUT:-}
KEEP_WORKDIR=${KEEP_WORKDIR:-}
DEFAULT_VIGIL_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/vigil"
VIGIL_BIN=${VIGIL_BIN:-}

PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
VMAGENT=${VMAGENT:-/usr/bin/vmagent}
NGINX=${NGINX:-/usr/sbin/nginx}

BENCH_NAME=scrape
# shellcheck source=scripts/bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- prerequisites
ensure_packages() {
  local missing=()
  [ -x "$NGINX" ] || missing+=(nginx)
  [ -x "$PROMETHEUS" ] || missing+=(prometheus)
  [ -x "$VMAGENT" ] || missing+=(victoria-metrics)
  command -v python3 >/dev/null || missing+=(python3)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root to install them, or install them"
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  if ! [ -x "$NGINX" ] || ! [ -x "$PROMETHEUS" ] || ! [ -x "$VMAGENT" ]; then die "install did not provide every tool"; fi
}

ensure_vigil() {
  if [ -n "$VIGIL_BIN" ]; then
    [ -x "$VIGIL_BIN" ] || die "VIGIL_BIN=$VIGIL_BIN is not an executable"
    return 0
  fi
  VIGIL_BIN=$DEFAULT_VIGIL_BIN
  if [ ! -x "$VIGIL_BIN" ]; then
    say "building $VIGIL_BIN (cargo build --release)"
    (cd "$REPO" && cargo build --release) >&2
  fi
  [ -x "$VIGIL_BIN" ] || die "no Vigil binary at $VIGIL_BIN"
}

# ---------------------------------------------------------------- configuration
write_configs() {
  mkdir -p "$WORK/www" "$WORK/logs" "$WORK/nginx" "$WORK/vigil-data" "$WORK/prom-agent" "$WORK/vmagent-data"
  chmod 755 "$WORK" "$WORK/www"
  cp "$CORPUS" "$WORK/www/metrics.prom"
  chmod 644 "$WORK/www/metrics.prom"

  # One file_sd group per target: same address, label t=N; relabelling turns t into ?t=N.
  {
    printf '['
    local i
    for ((i = 0; i < TARGETS; i++)); do
      [ "$i" -gt 0 ] && printf ','
      printf '\n  {"targets": ["127.0.0.1:%s"], "labels": {"t": "%s"}}' "$NGINX_PORT" "$i"
    done
    printf '\n]\n'
  } >"$WORK/targets.json"

  cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/logs/nginx-error.log warn;
events { worker_connections 1024; }
http {
  client_body_temp_path $WORK/nginx/client_body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  types { }
  default_type "text/plain; version=0.0.4; charset=utf-8";
  sendfile on;
  gzip off;
  keepalive_timeout 75s;
  keepalive_requests 10000000;
  log_format bench '\$msec \$request_time \$status \$body_bytes_sent \$request_uri';
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
    access_log $WORK/logs/access.log bench;
    # vmagent's remote write sink: read and drop the body
    location = /sink { access_log off; client_max_body_size 0; return 204; }
    # every other path and query is a target serving the corpus
    location / { rewrite ^ /metrics.prom break; }
  }
}
EOF

  cat >"$WORK/vigil.yaml" <<EOF
agent:
  listen: 127.0.0.1:$VIGIL_PORT
  data_dir: $WORK/vigil-data
  shutdown_grace_period: 2s
demo:
  enabled: false
scrape:
  interval: 1s
  timeout: 1s
  targets:
    - job: bench
      metrics_path: /vigil/metrics
      file_sd_configs:
        - files: [$WORK/targets.json]
      relabel_configs:
        - source_labels: [t]
          target_label: __param_t
EOF

  local peer
  for peer in prometheus vmagent; do
    cat >"$WORK/$peer.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: bench
    metrics_path: /$peer/metrics
    file_sd_configs:
      - files: [$WORK/targets.json]
    relabel_configs:
      - source_labels: [t]
        target_label: __param_t
EOF
  done
}

# ---------------------------------------------------------------- peers
# start_peer PEER: sets PEER_PID, PEER_READY_URL, PEER_TARGETS_URL
start_peer() {
  case $1 in
    vigil)
      rm -rf "$WORK/vigil-data"; mkdir -p "$WORK/vigil-data"
      start_bg vigil "$VIGIL_BIN" run --config "$WORK/vigil.yaml"
      PEER_READY_URL="http://127.0.0.1:$VIGIL_PORT/healthz"
      PEER_TARGETS_URL="http://127.0.0.1:$VIGIL_PORT/api/v1/targets"
      ;;
    vmagent)
      rm -rf "$WORK/vmagent-data"; mkdir -p "$WORK/vmagent-data"
      start_bg vmagent "$VMAGENT" \
        -promscrape.config="$WORK/vmagent.yml" \
        -httpListenAddr="127.0.0.1:$VMAGENT_PORT" \
        -remoteWrite.url="http://127.0.0.1:$NGINX_PORT/sink" \
        -remoteWrite.tmpDataPath="$WORK/vmagent-data" \
        -loggerLevel=WARN
      PEER_READY_URL="http://127.0.0.1:$VMAGENT_PORT/health"
      PEER_TARGETS_URL="http://127.0.0.1:$VMAGENT_PORT/api/v1/targets"
      ;;
    prometheus)
      rm -rf "$WORK/prom-agent"; mkdir -p "$WORK/prom-agent"
      start_bg prometheus "$PROMETHEUS" \
        --config.file="$WORK/prometheus.yml" \
        --enable-feature=agent \
        --storage.agent.path="$WORK/prom-agent" \
        --web.listen-address="127.0.0.1:$PROM_PORT" \
        --log.level=warn
      PEER_READY_URL="http://127.0.0.1:$PROM_PORT/-/ready"
      PEER_TARGETS_URL="http://127.0.0.1:$PROM_PORT/api/v1/targets"
      ;;
    *) die "unknown peer $1 (vigil, vmagent, prometheus)" ;;
  esac
  PEER_PID=$LAST_PID
  wait_http "$1" "$PEER_PID" "$PEER_READY_URL"
}

# Vigil's /metrics into a file (curl is quick, so the counters bracket the CPU window tightly)
vigil_metrics_to() { curl -fsS --max-time 5 -o "$1" "http://127.0.0.1:$VIGIL_PORT/metrics" || : >"$1"; }
vigil_metric() { python3 "$STATS" metric "$1" "$2"; }

# bench_peer RUN PEER: one measured run; appends a row to $WORK/results.tsv
bench_peer() {
  local run=$1 peer=$2
  say "run $run: $peer: starting; warm-up ${WARMUP}s, window ${MEASURE}s"
  start_peer "$peer"
  nap "$WARMUP"
  pid_alive "$PEER_PID" || die "$peer died during warm-up (see $WORK/logs/$peer.log)"

  local l0 c0 t0 c1 t1 rss l1
  l0=$(load1)
  if [ "$peer" = vigil ]; then vigil_metrics_to "$WORK/vigil-metrics.0"; fi
  c0=$(cpu_ticks "$PEER_PID"); t0=$(date +%s.%N)
  nap "$MEASURE"
  pid_alive "$PEER_PID" || die "$peer died during the window (see $WORK/logs/$peer.log)"
  c1=$(cpu_ticks "$PEER_PID"); t1=$(date +%s.%N)
  if [ "$peer" = vigil ]; then vigil_metrics_to "$WORK/vigil-metrics.1"; fi
  rss=$(rss_kib "$PEER_PID")
  l1=$(load1)
  local up
  up=$(python3 "$STATS" targets "$PEER_TARGETS_URL")
  cp "$WORK/logs/$peer.log" "$WORK/logs/$peer.run$run.log" 2>/dev/null || true
  stop_pid "$PEER_PID"; forget_pid "$PEER_PID"

  local kv
  kv=$(python3 "$STATS" log "$WORK/logs/access.log" "$peer" "$t0" "$t1" "$SERIES")
  local scrapes samples non200 p50 p99 pmax seen
  scrapes=$(sed -n 's/^scrapes=//p' <<<"$kv")
  samples=$(sed -n 's/^samples=//p' <<<"$kv")
  non200=$(sed -n 's/^non200=//p' <<<"$kv")
  seen=$(sed -n 's/^targets_seen=//p' <<<"$kv")
  p50=$(sed -n 's/^jitter_p50_ms=//p' <<<"$kv")
  p99=$(sed -n 's/^jitter_p99_ms=//p' <<<"$kv")
  pmax=$(sed -n 's/^jitter_max_ms=//p' <<<"$kv")

  local cpu_s cpu_per_m rss_mb window
  cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
  cpu_per_m=$(awk -v c="$cpu_s" -v s="$samples" 'BEGIN {if (s > 0) printf "%.3f", c / (s / 1e6); else print "nan"}')
  rss_mb=$(awk -v k="$rss" 'BEGIN {printf "%.0f", k / 1024}')
  window=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
  local up_s
  up_s="$(cut -d' ' -f1 <<<"$up")/$(cut -d' ' -f2 <<<"$up")"

  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$run" "$peer" "$scrapes" "$samples" "$cpu_s" "$cpu_per_m" "$rss_mb" "$up_s" \
    "$p50" "$p99" "$pmax" "$l0→$l1" >>"$WORK/results.tsv"

  say "run $run: $peer: window ${window}s, scrapes $scrapes (non-2xx $non200, targets seen $seen), samples $samples, CPU ${cpu_s}s, ${cpu_per_m} CPU-s/M samples, RSS ${rss_mb} MiB, up $up_s, jitter p50/p99/max ${p50}/${p99}/${pmax} ms"
  if [ "$peer" = vigil ]; then
    local vs0 vs1 vn0 vn1 dvs dvn
    vs0=$(vigil_metric "$WORK/vigil-metrics.0" vigil_scrape_samples_total)
    vs1=$(vigil_metric "$WORK/vigil-metrics.1" vigil_scrape_samples_total)
    vn0=$(vigil_metric "$WORK/vigil-metrics.0" vigil_scrapes_total)
    vn1=$(vigil_metric "$WORK/vigil-metrics.1" vigil_scrapes_total)
    dvs=$(awk -v a="$vs0" -v b="$vs1" 'BEGIN {if (a == "?" || b == "?") print "?"; else printf "%.0f", b - a}')
    dvn=$(awk -v a="$vn0" -v b="$vn1" 'BEGIN {if (a == "?" || b == "?") print "?"; else printf "%.0f", b - a}')
    say "run $run: vigil cross-check: vigil_scrapes_total +$dvn, vigil_scrape_samples_total +$dvs (access log: $scrapes scrapes, $samples samples; the counters are read just outside the CPU window)"
    printf '%s\tvigil\t%s\t%s\t%s\t%s\n' "$run" "$dvn" "$dvs" "$scrapes" "$samples" >>"$WORK/crosscheck.tsv"
  fi
}

# ---------------------------------------------------------------- main
main() {
  [ -r "$CORPUS" ] || die "corpus $CORPUS not readable"
  ensure_packages
  ensure_vigil
  HZ=$(getconf CLK_TCK)
  SERIES=$(grep -Evc '^[[:space:]]*(#|$)' "$CORPUS")

  local p
  for p in "$NGINX_PORT" "$VIGIL_PORT" "$VMAGENT_PORT" "$PROM_PORT"; do
    port_open "$p" && die "port $p is in use; set NGINX_PORT / VIGIL_PORT / VMAGENT_PORT / PROM_PORT"
  done

  WORK=$(mktemp -d /tmp/vigil-bench-scrape.XXXXXX)
  write_configs
  printf 'run\tpeer\tscrapes\tsamples\tcpu_s\tcpu_per_m\trss_mb\tup\tjitter_p50_ms\tjitter_p99_ms\tjitter_max_ms\tload1\n' >"$WORK/results.tsv"

  start_bg nginx "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;'
  local nginx_pid=$LAST_PID
  wait_http nginx "$nginx_pid" "http://127.0.0.1:$NGINX_PORT/check/metrics?t=x"
  : >"$WORK/logs/access.log"   # drop the readiness probe (nginx keeps the file open)

  say "corpus: $CORPUS ($SERIES series); $TARGETS targets every 1s; runs: $RUNS; peers: $PEERS"
  say "vigil: $("$VIGIL_BIN" --version 2>&1 | head -1)"
  say "vmagent: $(dpkg-query -W -f '${Package} ${Version}' victoria-metrics 2>/dev/null || echo "$VMAGENT")"
  say "prometheus: $("$PROMETHEUS" --version 2>&1 | head -1)"
  say "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r)"

  local run peer
  for ((run = 1; run <= RUNS; run++)); do
    for peer in $PEERS; do
      bench_peer "$run" "$peer"
      pid_alive "$nginx_pid" || die "nginx died (see $WORK/logs/nginx-error.log)"
    done
  done

  local nginx_errors
  nginx_errors=$(grep -c '\[error\]' "$WORK/logs/nginx-error.log" 2>/dev/null || true)

  {
    echo "Scrape benchmark: $TARGETS targets × $SERIES series every 1 s, warm-up ${WARMUP}s, window ${MEASURE}s, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "Machine: $(nproc) CPUs, $(uname -r); nginx error lines: ${nginx_errors:-0}"
    echo
    python3 "$STATS" table "$WORK/results.tsv"
    if [ -s "$WORK/crosscheck.tsv" ]; then
      echo
      echo "Vigil's own counters over the window (cross-check of the access log):"
      echo
      echo "| run | vigil_scrapes_total Δ | vigil_scrape_samples_total Δ | access-log scrapes | access-log samples |"
      echo "|---|---|---|---|---|"
      awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $3, $4, $5, $6}' "$WORK/crosscheck.tsv"
    fi
  } | tee ${BENCH_OUT:+"$BENCH_OUT"}
}

main "$@"
