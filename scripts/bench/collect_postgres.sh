#!/usr/bin/env bash
# Postgres collector benchmark: CPU time, wall time and server queries per collection of Vigil's
# postgres collector vs the Debian postgres_exporter 0.11, both collecting the same private
# PostgreSQL server in the same run.
#
#   scripts/bench/collect_postgres.sh [ROUNDS] [INTERVAL_SECONDS]     (defaults 60, 1)
#
# A private cluster is initdb'd in a temp dir (as the postgres OS user; run as root) with
# log_statement=all and log_line_prefix '%a|', so every statement is counted per
# application_name (vigil: "vigil", the exporter: "pg_exporter"). Vigil runs one postgres
# collector at INTERVAL; the script scrapes the exporter's /metrics (and Vigil's, so that both
# serve one exposition per round) every INTERVAL for ROUNDS rounds. Reported per collection:
# CPU (utime+stime from /proc/PID/stat over the window / collections), wall time (mean of
# vigil_collector_duration_seconds vs pg_exporter_last_scrape_duration_seconds) and statements,
# then the Vigil/exporter ratios. Nothing asserts: it measures and prints.
#
# Environment: VIGIL_BIN [${CARGO_TARGET_DIR:-target}/debug/vigil], PG_BIN
# [/usr/lib/postgresql/15/bin], PG_EXPORTER [/usr/bin/prometheus-postgres-exporter],
# SETTINGS [true] (Vigil's settings key; the exporter always collects settings), KEEP_WORKDIR=1
# (keep the temp dir with the server log).
set -euo pipefail
ROUNDS=${1:-60}
INTERVAL=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
VIGIL_BIN=${VIGIL_BIN:-${CARGO_TARGET_DIR:-$here/../../target}/debug/vigil}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_EXPORTER=${PG_EXPORTER:-/usr/bin/prometheus-postgres-exporter}
[ -x "$VIGIL_BIN" ] || { echo "build vigil first (cargo build), or set VIGIL_BIN" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (initdb/pg_ctl run as the postgres OS user)" >&2; exit 1; }
exec python3 "$here/collect_postgres.py" "$ROUNDS" "$INTERVAL" "$VIGIL_BIN" "$PG_BIN" "$PG_EXPORTER" "${SETTINGS:-true}"
