#!/usr/bin/env bash
# Install and run, on 127.0.0.1, every real service Vigil's test suite needs.
#
#   scripts/test-services.sh [start [SVC...]]  install what is missing, start what is not
#                                              running, wait until ready, write $STATE/env
#   scripts/test-services.sh install           only install what is missing
#   scripts/test-services.sh stop [SVC...]     stop what this script started (pid files)
#   scripts/test-services.sh restart SVC...    stop + start the named services
#   scripts/test-services.sh status            each service and whether it answers
#   scripts/test-services.sh smoke             start, then exercise every service for real
#   scripts/test-services.sh env               print the env file
#
# SVC is one of: postgres redis tansu prometheus alertmanager vmagent smtp node-exporter
# State (data, configs, logs, pid files, env): ${VIGIL_TEST_STATE_DIR:-/tmp/vigil-test-services}
# See docs/test-services.md.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${VIGIL_TEST_STATE_DIR:-/tmp/vigil-test-services}
LOGS=$STATE/logs
RUN=$STATE/run
INSTALL_LOG=$LOGS/install.log
ENV_FILE=$STATE/env

PG_PORT=55432
REDIS_PORT=56379
KAFKA_PORT=59092
PROM_PORT=59090
AM_PORT=59093
VMAGENT_PORT=58429
SMTP_PORT=52525
NODE_EXPORTER_PORT=59100

PG_BIN=/usr/lib/postgresql/15/bin
PG_DATA=$STATE/pg
PG_SOCK=$STATE/pgsock
PG_URL=postgres://vigil:vigil@127.0.0.1:$PG_PORT/vigil
SYS_PYTHON=/usr/bin/python3            # Debian's python: the one python3-aiosmtpd installs into
VENV=$STATE/venv
VENV_PY=$VENV/bin/python
KAFKA_PYTHON_VERSION=3.0.12
# Reference parser for the exposition differential test (tests/exposition_diff.rs).
PROMETHEUS_CLIENT_VERSION=0.26.0
# Test clients and validators, pinned: the external metrics API's Python client (issue #8), the
# dashboard JSON-schema validator (issue #9), the offline Kubernetes manifest validator (issue #10).
PY_PINNED=(
  "kafka-python==$KAFKA_PYTHON_VERSION"
  "prometheus-client==$PROMETHEUS_CLIENT_VERSION"
  "kubernetes==37.0.2"
  "jsonschema==4.26.0"
  "kubernetes-validate==1.37.0"
  # Grafana's dashboard models (the pinned foundation SDK), for tests/fixtures/dashboards/validate.py.
  "grafana-foundation-sdk==1769699379!11.6.0"
)
TANSU_VERSION=0.6.0
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
TANSU=$CARGO_BIN/tansu
TANSU_LEAD_LOG=/tmp/vigil-setup/tansu-install.log   # where an already-running install may log
TANSU_INSTALL_TIMEOUT=${VIGIL_TANSU_INSTALL_TIMEOUT:-2700}
READY_TIMEOUT=${VIGIL_TEST_READY_TIMEOUT:-60}

ALL_SERVICES=(postgres redis tansu prometheus alertmanager vmagent smtp node-exporter)
APT_PACKAGES=(
  postgresql redis-server redis-tools
  prometheus prometheus-alertmanager victoria-metrics
  prometheus-node-exporter prometheus-postgres-exporter prometheus-redis-exporter
  python3-aiosmtpd curl ca-certificates procps iproute2 openssl
  chromium chromium-driver wrk
)

# ---------------------------------------------------------------------------- helpers
say()  { printf '%s\n' "$*"; }
warn() { printf 'test-services: WARNING: %s\n' "$*" >&2; }
die()  { printf 'test-services: ERROR: %s\n' "$*" >&2; exit 1; }
now()  { date +%s; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Port accepting TCP connections on 127.0.0.1?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Who listens on a port (best effort, for error messages).
port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | sed 's/^/    /' || true
  fi
}

# alive and not a zombie (an init that is slow to reap must not make a dead daemon look alive)
# `cmd | grep -q` can fail under pipefail: grep exits at the first match and cmd gets SIGPIPE.
# grep_q reads all of its input instead.
grep_q() { grep "$@" >/dev/null; }

pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
  [ "${st%% *}" != Z ]
}

pidfile() { printf '%s/%s.pid' "$RUN" "$1"; }

read_pid() { local f; f=$(pidfile "$1"); [ -s "$f" ] && cat "$f" || true; }

log_of() {
  case $1 in
    tansu-install) printf '%s/tansu-install.log' "$LOGS" ;;
    *) printf '%s/%s.log' "$LOGS" "$1" ;;
  esac
}

log_tail() { # file [lines]
  local f=$1 n=${2:-30}
  if [ -s "$f" ]; then
    printf -- '----- last %s lines of %s -----\n' "$n" "$f" >&2
    tail -n "$n" "$f" >&2
    printf -- '-----\n' >&2
  else
    printf '(log %s is empty or missing)\n' "$f" >&2
  fi
}

fail_service() { # svc message
  local svc=$1; shift
  printf 'test-services: ERROR: %s: %s (log: %s)\n' "$svc" "$*" "$(log_of "$svc")" >&2
  log_tail "$(log_of "$svc")" 40
  exit 1
}

# Run a command detached from this script: own session, stdin from /dev/null, output to the
# service log, so it survives the script exiting and never holds the caller's stdout/pipe.
launch() { # svc cmd...
  local svc=$1; shift
  local log; log=$(log_of "$svc")
  { printf '\n==== %s starting %s:' "$(date -Is)" "$svc"; printf ' %q' "$@"; printf '\n'; } >>"$log"
  setsid nohup "$@" </dev/null >>"$log" 2>&1 &
  echo $! >"$(pidfile "$svc")"
}

http_code() { curl -s -o /dev/null -m 3 -w '%{http_code}' "$1" 2>/dev/null || true; }
http_get()  { curl -fsS -m 3 "$1" 2>/dev/null; }

# ---------------------------------------------------------------------------- install
pkg_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

install_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  # A venv needs ensurepip; Debian's own python3 only has it with python3-venv.
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    pkg_installed python3-venv || missing+=(python3-venv)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  is_root || die "missing Debian packages (${missing[*]}) and not root: install them as root first"
  say "installing Debian packages: ${missing[*]} (log: $INSTALL_LOG)"
  # Keep package postinst scripts from starting the packaged daemons on their default
  # ports (no systemd here; invoke-rc.d honours policy-rc.d). Only if no policy exists yet.
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, written by vigil scripts/test-services.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"; made_policy=1
  fi
  local rc=0
  {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update &&
      apt-get install -y --no-install-recommends "${missing[@]}"
  } >>"$INSTALL_LOG" 2>&1 </dev/null || rc=$?
  [ -n "$made_policy" ] && rm -f "$policy"
  if [ $rc -ne 0 ]; then
    printf 'test-services: ERROR: apt-get failed (exit %s) installing: %s\n' "$rc" "${missing[*]}" >&2
    log_tail "$INSTALL_LOG" 60
    exit 1
  fi
}

install_venv() {
  if [ -x "$VENV_PY" ] && "$VENV_PY" - "${PY_PINNED[@]}" >/dev/null 2>&1 <<'PY'
import importlib.metadata as m, sys
sys.exit(any(m.version(n) != v for n, v in (a.split("==") for a in sys.argv[1:])))
PY
  then
    return 0
  fi
  say "creating python venv $VENV with ${PY_PINNED[*]} (log: $INSTALL_LOG)"
  local rc=0
  {
    [ -x "$VENV_PY" ] || python3 -m venv "$VENV"
    "$VENV_PY" -m pip install --disable-pip-version-check -q "${PY_PINNED[@]}"
  } >>"$INSTALL_LOG" 2>&1 </dev/null || rc=$?
  if [ $rc -ne 0 ]; then
    printf 'test-services: ERROR: creating venv / pip install failed (exit %s)\n' "$rc" >&2
    log_tail "$INSTALL_LOG" 40
    exit 1
  fi
}

tansu_ok() { [ -x "$TANSU" ] && "$TANSU" --version 2>/dev/null | grep_q -w "$TANSU_VERSION"; }

# pid of a running `cargo install tansu` (someone else's or ours), if any
tansu_install_pid() {
  local p
  for p in $(pgrep -x cargo 2>/dev/null || true); do
    if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep_q 'install tansu'; then echo "$p"; return 0; fi
  done
  return 1
}

# Make sure a tansu build is available or under way (non-blocking).
tansu_install_begin() {
  tansu_ok && return 0
  if tansu_install_pid >/dev/null; then return 0; fi
  [ -x "$CARGO_BIN/cargo" ] || command -v cargo >/dev/null 2>&1 ||
    die "tansu: cargo not found (looked in $CARGO_BIN and PATH); cannot install tansu $TANSU_VERSION"
  local cargo; cargo=$(command -v cargo 2>/dev/null || echo "$CARGO_BIN/cargo")
  say "tansu $TANSU_VERSION: starting 'cargo install tansu --version $TANSU_VERSION --features dynostore' in the background (~13 min on 2 cores; log: $(log_of tansu-install))"
  printf '\n==== %s cargo install tansu\n' "$(date -Is)" >>"$(log_of tansu-install)"
  setsid nohup "$cargo" install tansu --version "$TANSU_VERSION" --features dynostore \
    </dev/null >>"$(log_of tansu-install)" 2>&1 &
  echo $! >"$RUN/tansu-install.pid"
}

# Block until tansu is installed (bounded).
tansu_install_wait() {
  tansu_ok && return 0
  local pid log deadline last=0
  pid=$(tansu_install_pid || true)
  if [ -z "$pid" ]; then
    tansu_install_begin
    pid=$(tansu_install_pid || read_pid tansu-install)   # our pid file if cargo has not exec'd yet
  fi
  # our own background install logs to $LOGS; someone else's (the lead's) to $TANSU_LEAD_LOG
  if [ "$(read_pid tansu-install)" = "$pid" ] || [ ! -f "$TANSU_LEAD_LOG" ]; then
    log=$(log_of tansu-install)
  else
    log=$TANSU_LEAD_LOG
  fi
  say "tansu: waiting for 'cargo install tansu' (pid ${pid:-?}, log: $log) ..."
  deadline=$(( $(now) + TANSU_INSTALL_TIMEOUT ))
  while pid_alive "$pid"; do
    if [ "$(now)" -ge "$deadline" ]; then
      printf 'test-services: ERROR: tansu: cargo install still running after %ss (log: %s)\n' "$TANSU_INSTALL_TIMEOUT" "$log" >&2
      log_tail "$log" 20; exit 1
    fi
    if [ $(( $(now) - last )) -ge 60 ]; then
      last=$(now)
      say "  tansu build: $(grep -Eo '(Compiling|Installing|Finished|Building) [^ ]+( v[^ ]+)?' "$log" 2>/dev/null | tail -n 1 || true)"
    fi
    sleep 5
  done
  tansu_ok || {
    printf 'test-services: ERROR: tansu: cargo install finished but %s is not tansu %s (log: %s)\n' "$TANSU" "$TANSU_VERSION" "$log" >&2
    log_tail "$log" 40; exit 1
  }
  say "tansu: $("$TANSU" --version 2>/dev/null | head -n 1) installed"
}

do_install() {
  install_packages
  install_venv
  command -v kubectl >/dev/null 2>&1 || warn "kubectl is NOT installed: VIGIL_TEST_KUBECTL will be empty and Kubernetes tests cannot run"
}

# ---------------------------------------------------------------------------- probes
# Each probe sends a real request; it must also recognise *our* instance, so a packaged
# daemon or another state dir's instance holding the port is not mistaken for ours.

probe_postgres() {
  local dir
  dir=$(PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" "$PG_URL" -XAtqc 'SHOW data_directory' 2>/dev/null) || return 1
  [ "$dir" = "$(readlink -f "$PG_DATA")" ]
}

probe_redis() {
  local out
  out=$(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PING 2>/dev/null) || return 1
  [ "$out" = PONG ] || return 1
  out=$(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" CONFIG GET dir 2>/dev/null | sed -n 2p)
  [ "$out" = "$STATE/redis" ]
}

probe_tansu() {
  [ -x "$VENV_PY" ] || return 1
  timeout 15 "$VENV_PY" "$SCRIPT_DIR/kafka_smoke.py" --probe "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1
}

probe_prometheus() {
  [ "$(http_code "http://127.0.0.1:$PROM_PORT/-/ready")" = 200 ] || return 1
  http_get "http://127.0.0.1:$PROM_PORT/api/v1/status/flags" | grep_q -F "\"storage.tsdb.path\":\"$STATE/prometheus/data\""
}

probe_alertmanager() {
  [ "$(http_code "http://127.0.0.1:$AM_PORT/-/ready")" = 200 ] || return 1
  http_get "http://127.0.0.1:$AM_PORT/api/v2/status" | grep_q -F "vigil-test-services"
}

probe_vmagent() {
  [ "$(http_get "http://127.0.0.1:$VMAGENT_PORT/health")" = OK ] || return 1
  http_get "http://127.0.0.1:$VMAGENT_PORT/flags" | grep_q -xF -- "-promscrape.config=\"$STATE/vmagent/scrape.yml\""
}

probe_smtp() {
  timeout 5 "$SYS_PYTHON" - "$SMTP_PORT" <<'EOF' >/dev/null 2>&1
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=3) as s:
    code, _ = s.ehlo("probe")
    assert code == 250
    assert s.noop()[0] == 250
EOF
}

probe_node-exporter() {
  http_get "http://127.0.0.1:$NODE_EXPORTER_PORT/metrics" | grep_q '^node_exporter_build_info'
}

svc_port() {
  case $1 in
    postgres) echo $PG_PORT ;; redis) echo $REDIS_PORT ;; tansu) echo $KAFKA_PORT ;;
    prometheus) echo $PROM_PORT ;; alertmanager) echo $AM_PORT ;; vmagent) echo $VMAGENT_PORT ;;
    smtp) echo $SMTP_PORT ;; node-exporter) echo $NODE_EXPORTER_PORT ;;
    *) die "unknown service '$1' (known: ${ALL_SERVICES[*]})" ;;
  esac
}

svc_url() {
  case $1 in
    postgres) echo "$PG_URL" ;; redis) echo "redis://127.0.0.1:$REDIS_PORT/" ;;
    tansu) echo "kafka://127.0.0.1:$KAFKA_PORT" ;; prometheus) echo "http://127.0.0.1:$PROM_PORT" ;;
    alertmanager) echo "http://127.0.0.1:$AM_PORT" ;; vmagent) echo "http://127.0.0.1:$VMAGENT_PORT" ;;
    smtp) echo "smtp://127.0.0.1:$SMTP_PORT" ;; node-exporter) echo "http://127.0.0.1:$NODE_EXPORTER_PORT" ;;
  esac
}

# Binary name expected in /proc/PID/cmdline of a process we started (guards against pid reuse).
svc_proc_match() {
  case $1 in
    postgres) echo postgres ;; redis) echo redis-server ;; tansu) echo tansu ;;
    prometheus) echo prometheus ;; alertmanager) echo alertmanager ;; vmagent) echo vmagent ;;
    smtp) echo aiosmtpd ;; node-exporter) echo node-exporter ;;
  esac
}

# pid from our pid file if that process is alive and is the expected program
our_pid() {
  local svc=$1 pid
  if [ "$svc" = postgres ]; then
    [ -s "$PG_DATA/postmaster.pid" ] && pid=$(head -n 1 "$PG_DATA/postmaster.pid") || pid=
  else
    pid=$(read_pid "$svc")
  fi
  pid_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep_q -- "$(svc_proc_match "$svc")" || return 1
  echo "$pid"
}

# ---------------------------------------------------------------------------- configs
write_configs() {
  mkdir -p "$STATE/redis" "$STATE/prometheus/rules" "$STATE/prometheus/targets" "$STATE/prometheus/data" \
    "$STATE/alertmanager/data" "$STATE/vmagent/targets" "$STATE/vmagent/tmp"
  # aiosmtpd's Mailbox only creates new/ cur/ tmp/ when the Maildir itself does not exist yet
  mkdir -p "$STATE/mail/new" "$STATE/mail/cur" "$STATE/mail/tmp"

  cat >"$STATE/prometheus/prometheus.yml.new" <<EOF
# generated by scripts/test-services.sh (vigil-test-services); rewritten on every start
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $STATE/prometheus/rules/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:$AM_PORT']
scrape_configs:
  - job_name: vigil-test
    file_sd_configs:
      - files: ['$STATE/prometheus/targets/*.json']
        refresh_interval: 1s
EOF
  mv -f "$STATE/prometheus/prometheus.yml.new" "$STATE/prometheus/prometheus.yml"

  cat >"$STATE/alertmanager/alertmanager.yml" <<EOF
# generated by scripts/test-services.sh (vigil-test-services); rewritten on every start
route:
  receiver: vigil-test-services-null
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: vigil-test-services-null
EOF

  cat >"$STATE/vmagent/scrape.yml" <<EOF
# generated by scripts/test-services.sh (vigil-test-services); rewritten on every start
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: vigil-test-vmagent
    file_sd_configs:
      - files: ['$STATE/vmagent/targets/*.json']
EOF
}

# ---------------------------------------------------------------------------- start
start_postgres() {
  is_root || die "postgres: must run as root (initdb/pg_ctl run as the postgres OS user via runuser)"
  [ -x "$PG_BIN/pg_ctl" ] || die "postgres: $PG_BIN/pg_ctl not found (is Debian postgresql-15 installed?)"
  runuser -u postgres -- test -x "$STATE" ||
    die "postgres: the postgres OS user cannot enter $STATE; choose a VIGIL_TEST_STATE_DIR it can traverse"
  local log; log=$(log_of postgres)
  touch "$log"; chown postgres: "$log"
  mkdir -p "$PG_SOCK"; chown postgres: "$PG_SOCK"
  if [ ! -s "$PG_DATA/PG_VERSION" ]; then
    rm -rf "$PG_DATA"; mkdir -p "$PG_DATA"; chown postgres: "$PG_DATA"; chmod 700 "$PG_DATA"
    local pw; pw=$(mktemp); echo vigil >"$pw"; chown postgres: "$pw"
    # bootstrap superuser "vigil" (password vigil); socket connections trusted, TCP by scram
    runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -U vigil --pwfile="$pw" -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 >>"$log" 2>&1 </dev/null ||
      { rm -f "$pw"; fail_service postgres "initdb failed"; }
    rm -f "$pw"
    cat >>"$PG_DATA/postgresql.conf" <<EOF

# --- vigil scripts/test-services.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  fi
  rm -f "$PG_DATA/postmaster.pid.stale"
  # pg_ctl daemonizes the postmaster (own session, output to the log); -W: we wait ourselves
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$log" -W start >>"$log" 2>&1 </dev/null ||
    fail_service postgres "pg_ctl start failed"
}

# create database "vigil" if missing (idempotent), through the unix socket as the bootstrap
# superuser; returns non-zero while the server is not accepting connections yet
prepare_postgres() {
  local psql=("$PG_BIN/psql" -h "$PG_SOCK" -p "$PG_PORT" -U vigil -d postgres -XAtq)
  local have; have=$("${psql[@]}" -c "SELECT count(*) FROM pg_database WHERE datname='vigil'" 2>/dev/null) || return 1
  if [ "$have" != 1 ]; then
    "${psql[@]}" -c 'CREATE DATABASE vigil OWNER vigil' >>"$(log_of postgres)" 2>&1 || return 1
  fi
  # a non-superuser with only pg_monitor, as the collector's docs recommend
  "${psql[@]}" >>"$(log_of postgres)" 2>&1 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vigil_monitor') THEN
    CREATE ROLE vigil_monitor LOGIN PASSWORD 'vigil_monitor' IN ROLE pg_monitor;
  END IF;
END $$;
SQL
}

start_redis() {
  launch redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$STATE/redis" --daemonize no --protected-mode yes --logfile ''
}

start_tansu() {
  tansu_install_wait
  launch tansu "$TANSU" broker \
    --storage-engine memory://tansu/ \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT"
}

start_prometheus() {
  launch prometheus prometheus \
    --config.file="$STATE/prometheus/prometheus.yml" \
    --storage.tsdb.path="$STATE/prometheus/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" \
    --web.enable-lifecycle --web.enable-remote-write-receiver
}

start_alertmanager() {
  launch alertmanager prometheus-alertmanager \
    --config.file="$STATE/alertmanager/alertmanager.yml" \
    --storage.path="$STATE/alertmanager/data" \
    --web.listen-address="127.0.0.1:$AM_PORT" \
    --cluster.listen-address=
}

vmagent_bin() {
  local b
  for b in /usr/bin/vmagent $(dpkg -L victoria-metrics 2>/dev/null | grep -E '/s?bin/vmagent$' || true); do
    [ -x "$b" ] && { echo "$b"; return 0; }
  done
  return 1
}

start_vmagent() {
  local bin; bin=$(vmagent_bin) || die "vmagent: no vmagent binary in the victoria-metrics package (dpkg -L victoria-metrics)"
  launch vmagent "$bin" \
    -httpListenAddr="127.0.0.1:$VMAGENT_PORT" \
    -promscrape.config="$STATE/vmagent/scrape.yml" \
    -promscrape.fileSDCheckInterval=1s \
    -remoteWrite.url="http://127.0.0.1:$PROM_PORT/api/v1/write" \
    -remoteWrite.tmpDataPath="$STATE/vmagent/tmp"
}

start_smtp() {
  "$SYS_PYTHON" -c 'import aiosmtpd' 2>/dev/null ||
    die "smtp: $SYS_PYTHON has no aiosmtpd module (Debian package python3-aiosmtpd)"
  launch smtp "$SYS_PYTHON" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$STATE/mail"
}

start_node-exporter() {
  # no systemd in these containers: its collector would only log an error on every scrape
  launch node-exporter prometheus-node-exporter --web.listen-address="127.0.0.1:$NODE_EXPORTER_PORT" \
    --no-collector.systemd
}

svc_timeout() { case $1 in tansu) echo "${VIGIL_TEST_TANSU_TIMEOUT:-60}" ;; *) echo "$READY_TIMEOUT" ;; esac; }

declare -A RESULT=()

ensure_service() {
  local svc=$1 port pid deadline how=started-now
  port=$(svc_port "$svc")
  if pid=$(our_pid "$svc"); then
    if probe_"$svc"; then RESULT[$svc]="already-running (pid $pid)"; return 0; fi
    how="already-running, was not ready yet"   # ours but not answering (yet): wait below
  elif port_open "$port"; then
    if probe_"$svc"; then
      RESULT[$svc]="already-running (not started by this script: no live pid file)"; return 0
    fi
    printf 'test-services: ERROR: %s: port %s is in use by something that is not our %s instance (state %s):\n%s\n' \
      "$svc" "$port" "$svc" "$STATE" "$(port_owner "$port")" >&2
    exit 1
  else
    "start_$svc"
  fi
  deadline=$(( $(now) + $(svc_timeout "$svc") ))
  local down_since='' retries=3
  until { [ "$svc" != postgres ] || prepare_postgres; } && probe_"$svc"; do
    if [ "$svc" != postgres ]; then
      pid_alive "$(read_pid "$svc")" || fail_service "$svc" "process exited before becoming ready"
    elif our_pid postgres >/dev/null; then
      down_since=''
    elif [ -z "$down_since" ]; then
      down_since=$(now)
    elif [ $(( $(now) - down_since )) -ge 3 ]; then
      # postmaster gone (e.g. leftovers of a killed server still held the lock): retry a few times
      [ $retries -gt 0 ] || fail_service postgres "postmaster exited before becoming ready"
      retries=$((retries - 1)); down_since=''
      start_postgres
    fi
    [ "$(now)" -ge "$deadline" ] && fail_service "$svc" "not ready after $(svc_timeout "$svc")s on 127.0.0.1:$port"
    sleep 0.5
  done
  pid=$(our_pid "$svc" || echo '?')
  RESULT[$svc]="$how (pid $pid)"
}

write_env() {
  local kubectl; kubectl=$(command -v kubectl 2>/dev/null || true)
  local amtool; amtool=$(command -v amtool 2>/dev/null || echo /usr/bin/amtool)
  local kv
  for kv in \
    "VIGIL_TEST_PG_URL=$PG_URL" \
    "VIGIL_TEST_PG_MONITOR_URL=postgres://vigil_monitor:vigil_monitor@127.0.0.1:$PG_PORT/vigil" \
    "VIGIL_TEST_PG_BIN=$PG_BIN" \
    "VIGIL_TEST_PG_EXPORTER=/usr/bin/prometheus-postgres-exporter" \
    "VIGIL_TEST_REDIS_EXPORTER=/usr/bin/prometheus-redis-exporter" \
    "VIGIL_TEST_REDIS_SERVER=$(command -v redis-server 2>/dev/null || echo /usr/bin/redis-server)" \
    "VIGIL_TEST_REDIS_BENCHMARK=$(command -v redis-benchmark 2>/dev/null || echo /usr/bin/redis-benchmark)" \
    "VIGIL_TEST_TANSU=$TANSU" \
    "VIGIL_TEST_PG_DATA=$PG_DATA" \
    "VIGIL_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/" \
    "VIGIL_TEST_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT" \
    "VIGIL_TEST_PYTHON=$VENV_PY" \
    "VIGIL_TEST_PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT" \
    "VIGIL_TEST_PROMETHEUS_DIR=$STATE/prometheus" \
    "VIGIL_TEST_ALERTMANAGER_URL=http://127.0.0.1:$AM_PORT" \
    "VIGIL_TEST_AMTOOL=$amtool" \
    "VIGIL_TEST_VMAGENT_URL=http://127.0.0.1:$VMAGENT_PORT" \
    "VIGIL_TEST_VMAGENT_DIR=$STATE/vmagent" \
    "VIGIL_TEST_SMTP_ADDR=127.0.0.1:$SMTP_PORT" \
    "VIGIL_TEST_SMTP_MAILDIR=$STATE/mail" \
    "VIGIL_TEST_NODE_EXPORTER_URL=http://127.0.0.1:$NODE_EXPORTER_PORT" \
    "VIGIL_TEST_KUBECTL=$kubectl" \
    "VIGIL_TEST_CHROMIUM=$(command -v chromium 2>/dev/null || echo /usr/bin/chromium)" \
    "VIGIL_TEST_CHROMEDRIVER=$(command -v chromedriver 2>/dev/null || echo /usr/bin/chromedriver)" \
    "VIGIL_TEST_WRK=$(command -v wrk 2>/dev/null || echo /usr/bin/wrk)"
  do
    printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
  done >"$ENV_FILE.new"
  mv -f "$ENV_FILE.new" "$ENV_FILE"
}

check_services() { # die (in the calling shell) on an unknown service name
  local s
  for s in "$@"; do
    case " ${ALL_SERVICES[*]} " in *" $s "*) ;; *) die "unknown service '$s' (known: ${ALL_SERVICES[*]})" ;; esac
  done
}

selected_services() { # args -> list (default: all)
  if [ $# -eq 0 ]; then printf '%s\n' "${ALL_SERVICES[@]}"; else printf '%s\n' "$@"; fi
}

do_start() {
  local t0 svcs svc; t0=$(now)
  mapfile -t svcs < <(selected_services "$@")
  # kick off the (slow) tansu build first so it overlaps with everything else
  if printf '%s\n' "${svcs[@]}" | grep_q -x tansu && ! tansu_ok; then tansu_install_begin; fi
  do_install
  write_configs
  for svc in "${svcs[@]}"; do ensure_service "$svc"; done
  write_env
  for svc in "${svcs[@]}"; do
    printf '  %-14s %-46s %s\n' "$svc" "$(svc_url "$svc")" "${RESULT[$svc]}"
  done
  command -v kubectl >/dev/null 2>&1 || say "  kubectl        MISSING (VIGIL_TEST_KUBECTL is empty)"
  say "env file: $ENV_FILE   (source it: . $ENV_FILE)   [$(( $(now) - t0 ))s]"
}

# ---------------------------------------------------------------------------- stop / status
stop_service() {
  local svc=$1 pid i
  if [ "$svc" = postgres ]; then
    if [ -s "$PG_DATA/postmaster.pid" ] && our_pid postgres >/dev/null; then
      runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >>"$(log_of postgres)" 2>&1 </dev/null ||
        fail_service postgres "pg_ctl stop failed"
      say "  postgres       stopped"
    else
      say "  postgres       not running from $PG_DATA"
    fi
    return 0
  fi
  if pid=$(our_pid "$svc"); then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do pid_alive "$pid" || break; sleep 0.1; done
    if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
    rm -f "$(pidfile "$svc")"
    say "  $(printf '%-14s' "$svc") stopped (pid $pid)"
  else
    rm -f "$(pidfile "$svc")"
    if port_open "$(svc_port "$svc")"; then
      say "  $(printf '%-14s' "$svc") not started by this script (port $(svc_port "$svc") is held by another process; left alone)"
    else
      say "  $(printf '%-14s' "$svc") not running"
    fi
  fi
}

do_stop() {
  local svcs i
  mapfile -t svcs < <(selected_services "$@")
  for (( i=${#svcs[@]}-1; i>=0; i-- )); do stop_service "${svcs[$i]}"; done
}

do_status() {
  local svc pid state rc=0
  for svc in "${ALL_SERVICES[@]}"; do
    if probe_"$svc"; then state=answers; else state="NOT answering"; rc=1; fi
    if pid=$(our_pid "$svc"); then pid="pid $pid"; else pid="no live pid file"; fi
    printf '  %-14s %-46s %-14s (%s)\n' "$svc" "$(svc_url "$svc")" "$state" "$pid"
  done
  printf '  %-14s %s\n' kubectl "$(command -v kubectl 2>/dev/null || echo MISSING)"
  if [ -f "$ENV_FILE" ]; then say "env file: $ENV_FILE"; else say "env file: $ENV_FILE (not written yet)"; fi
  return $rc
}

# ---------------------------------------------------------------------------- smoke
smoke_fail() { printf 'test-services: SMOKE FAILED: %s\n' "$*" >&2; exit 1; }

wait_for() { # seconds description cmd...
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(now) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(now)" -ge "$deadline" ] && smoke_fail "$what (waited ${secs}s)"
    sleep 1
  done
}

prom_has() { # promql -> non-empty result
  curl -fsS -m 3 "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" | grep_q '"result":\[{'
}

do_smoke() {
  do_start
  # shellcheck disable=SC1090
  . "$ENV_FILE"
  local t0; t0=$(now)
  say "smoke:"

  "$PG_BIN/psql" "$VIGIL_TEST_PG_URL" -XAtqc 'CREATE TEMP TABLE t(x int); INSERT INTO t VALUES (41); SELECT x+1 FROM t' |
    grep_q -x 42 || smoke_fail "postgres query via $VIGIL_TEST_PG_URL"
  say "  postgres       ok (scram login as vigil, query)"

  local k="vigil-smoke-$$"
  redis-cli -u "$VIGIL_TEST_REDIS_URL" SET "$k" v EX 30 | grep_q -x OK || smoke_fail "redis SET"
  [ "$(redis-cli -u "$VIGIL_TEST_REDIS_URL" GET "$k")" = v ] || smoke_fail "redis GET"
  redis-cli -u "$VIGIL_TEST_REDIS_URL" DEL "$k" >/dev/null
  say "  redis          ok (SET/GET)"

  timeout 120 "$VIGIL_TEST_PYTHON" "$SCRIPT_DIR/kafka_smoke.py" "$VIGIL_TEST_KAFKA_BROKERS" |
    sed 's/^/    /' || smoke_fail "kafka smoke against tansu (scripts/kafka_smoke.py)"
  say "  tansu          ok (create topic, produce, consume with committing group)"

  # node-exporter scraped by Prometheus (file_sd) and by vmagent (file_sd -> remote write -> Prometheus)
  local pt="$VIGIL_TEST_PROMETHEUS_DIR/targets/zz-smoke.json" vt="$VIGIL_TEST_VMAGENT_DIR/targets/zz-smoke.json"
  printf '[{"targets":["127.0.0.1:%s"],"labels":{"smoke":"prom"}}]\n' "$NODE_EXPORTER_PORT" >"$pt"
  printf '[{"targets":["127.0.0.1:%s"],"labels":{"smoke":"vmagent"}}]\n' "$NODE_EXPORTER_PORT" >"$vt"
  wait_for 30 "prometheus did not scrape node-exporter via file_sd" prom_has 'up{job="vigil-test",smoke="prom"} == 1'
  say "  prometheus     ok (file_sd target scraped)"
  say "  node-exporter  ok (scraped by prometheus)"
  wait_for 45 "vmagent scrape did not arrive in prometheus via remote write" \
    prom_has 'node_exporter_build_info{job="vigil-test-vmagent",smoke="vmagent"}'
  say "  vmagent        ok (file_sd target scraped, remote-written into prometheus)"
  rm -f "$pt" "$vt"
  curl -fsS -m 5 -X POST "$VIGIL_TEST_PROMETHEUS_URL/-/reload" >/dev/null || smoke_fail "prometheus POST /-/reload"
  say "  prometheus     ok (POST /-/reload)"

  local alert="VigilSmoke$$"
  "$VIGIL_TEST_AMTOOL" --alertmanager.url="$VIGIL_TEST_ALERTMANAGER_URL" alert add "$alert" smoke=yes \
    --annotation=summary=smoke >/dev/null || smoke_fail "amtool alert add"
  wait_for 10 "alert not visible in alertmanager" \
    bash -c "'$VIGIL_TEST_AMTOOL' --alertmanager.url='$VIGIL_TEST_ALERTMANAGER_URL' alert query alertname='$alert' | grep '$alert' >/dev/null"
  say "  alertmanager   ok (amtool alert add + query)"

  local before after
  before=$(find "$VIGIL_TEST_SMTP_MAILDIR/new" -type f | wc -l)
  "$SYS_PYTHON" - "$VIGIL_TEST_SMTP_ADDR" <<'EOF' || smoke_fail "smtp send"
import smtplib, sys
from email.message import EmailMessage
host, port = sys.argv[1].rsplit(":", 1)
m = EmailMessage()
m["From"] = "vigil@example.test"; m["To"] = "oncall@example.test"; m["Subject"] = "vigil smoke"
m.set_content("smoke")
with smtplib.SMTP(host, int(port), timeout=5) as s:
    s.send_message(m)
EOF
  wait_for 10 "mail not delivered to $VIGIL_TEST_SMTP_MAILDIR/new" \
    bash -c "[ \$(find '$VIGIL_TEST_SMTP_MAILDIR/new' -type f | wc -l) -gt $before ]"
  after=$(find "$VIGIL_TEST_SMTP_MAILDIR/new" -type f | wc -l)
  say "  smtp           ok (mail stored in Maildir: $before -> $after files in new/)"
  say "smoke passed [$(( $(now) - t0 ))s]"
}

# ---------------------------------------------------------------------------- main
main() {
  mkdir -p "$STATE" "$LOGS" "$RUN"
  chmod 755 "$STATE"
  local action=${1:-start}; [ $# -gt 0 ] && shift
  case $action in start|stop|restart) check_services "$@" ;; esac
  case $action in
    start)   do_start "$@" ;;
    install) do_install; tansu_install_wait ;;
    stop)    do_stop "$@" ;;
    restart) [ $# -gt 0 ] || die "restart needs service names"; do_stop "$@"; do_start "$@" ;;
    status)  do_status ;;
    smoke)   do_smoke ;;
    env)     cat "$ENV_FILE" ;;
    -h|--help|help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown action '$action' (start|install|stop|restart|status|smoke|env)" ;;
  esac
}

main "$@"
