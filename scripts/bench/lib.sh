# Shared by the scripts in scripts/bench/ (sourced, not run): logging, processes started in
# the background and stopped on exit (also on Ctrl-C), waiting for HTTP, CPU and memory readings.
# The sourcing script sets BENCH_NAME (for messages) and WORK (its temp dir, removed on exit
# unless KEEP_WORKDIR is set).
KEEP_WORKDIR=${KEEP_WORKDIR:-}

say()  { printf '%s\n' "$*" >&2; }
die()  { printf 'bench/%s: ERROR: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes and cleanup
WORK=""
STARTED=()      # pids this script started
NAP_PID=""

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

stop_pid() {    # TERM, up to 30 s, then KILL; only pids we started
  local pid=$1 i
  pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    pid_alive "$pid" || break
    sleep 0.1
  done
  if pid_alive "$pid"; then
    say "pid $pid ignored SIGTERM for 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$NAP_PID" ]; then kill "$NAP_PID" 2>/dev/null || true; fi
  local pid
  for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ -n "$KEEP_WORKDIR" ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# sleep that a signal interrupts at once (a foreground sleep would delay the trap)
nap() { sleep "$1" & NAP_PID=$!; wait "$NAP_PID" || true; NAP_PID=""; }

start_bg() {    # start_bg NAME CMD...: run in the background, log to $WORK/logs/NAME.log
  local name=$1; shift
  "$@" >"$WORK/logs/$name.log" 2>&1 &
  LAST_PID=$!
  STARTED+=("$LAST_PID")
}

forget_pid() {
  local keep=() p
  for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  STARTED=("${keep[@]}")
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_http() {   # wait_http NAME PID URL: until URL answers 2xx, the process dies, or 60 s
  local name=$1 pid=$2 url=$3 i
  for ((i = 0; i < 600; i++)); do
    pid_alive "$pid" || { tail -20 "$WORK/logs/$name.log" >&2; die "$name exited at start (log above)"; }
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  tail -20 "$WORK/logs/$name.log" >&2
  die "$name did not answer $url within 60 s"
}

cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }   # utime + stime
rss_kib()   { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
load1()     { cut -d' ' -f1 /proc/loadavg; }

