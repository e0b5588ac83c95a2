#!/usr/bin/env bash
# The container image's binary, without Docker (Docker cannot run on the build machines).
#
#   scripts/image.sh build         install the musl toolchain if it is missing (apt-get as root,
#                                  rustup), then build the binary with docker/Dockerfile's own
#                                  command: a static musl binary, `image` profile (fat LTO)
#   scripts/image.sh smoke [BIN]   check that binary as the image runs it: static, within the
#                                  size budget, runs as UID 65532 on the shipped config, resolves
#                                  names through musl's resolver as Kubernetes DNS serves them
#
# CI (.ci/run) runs both. tests/deploy.rs checks that the build line below is the Dockerfile's
# RUN line verbatim. See docs/deploy.md ("The image's binary").
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-musl
BIN=${CARGO_TARGET_DIR:-target}/$TARGET/image/vigil
# The image must stay under 30 MB (10^6 bytes). gcr.io/distroless/static-debian12 is about 2 MiB
# and /etc/vigil a few kB, so the binary gets 27 MB.
MAX_BINARY_BYTES=27000000

say() { printf 'image: %s\n' "$*"; }
die() { printf 'image: ERROR: %s\n' "$*" >&2; exit 1; }

install_toolchain() {
  # ring and the bundled SQLite compile C for the target: musl-gcc comes with musl-tools.
  if ! command -v musl-gcc >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "musl-gcc is missing and this is not root: run 'apt-get install musl-tools' as root"
    say "installing musl-tools"
    { export DEBIAN_FRONTEND=noninteractive
      apt-get update && apt-get install -y --no-install-recommends musl-tools
    } >/tmp/vigil-image-apt.log 2>&1 </dev/null || { tail -40 /tmp/vigil-image-apt.log >&2; die "apt-get install musl-tools failed"; }
  fi
  if ! rustup target list --installed | grep -qx "$TARGET"; then
    say "adding the Rust target $TARGET"
    rustup target add "$TARGET"
  fi
}

build() {
  install_toolchain
  started=$(date +%s)
  # The Dockerfile's build command (kept verbatim: tests/deploy.rs compares them).
  cargo build --profile image --locked --target x86_64-unknown-linux-musl --bin vigil
  say "built $BIN ($(stat -c %s "$BIN") bytes) in $(( $(date +%s) - started ))s"
}

# Everything the smoke test starts, stopped on exit.
PIDS=()
WORK=
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$WORK" ] && rm -rf "$WORK"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # wait_for SECONDS COMMAND...
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

smoke() {
  local bin=${1:-$BIN}
  [ -x "$bin" ] || die "$bin does not exist: build it first with 'scripts/image.sh build'"
  [ "$(id -u)" = 0 ] || die "the DNS check needs root (a private mount namespace for /etc/resolv.conf): run as root"
  command -v unshare >/dev/null || die "unshare (util-linux) is missing"

  # 1. Static: distroless/static has no libc, so the binary must not need one.
  local ldd_out
  ldd_out=$(ldd "$bin" 2>&1 || true)
  case "$ldd_out" in
    *"statically linked"*|*"not a dynamic executable"*) say "static: yes ($ldd_out)";;
    *) die "$bin is dynamically linked; distroless/static cannot run it:"$'\n'"$ldd_out";;
  esac

  # 2. Size budget.
  local size; size=$(stat -c %s "$bin")
  [ "$size" -le "$MAX_BINARY_BYTES" ] ||
    die "$bin is $size bytes, over the $MAX_BINARY_BYTES-byte budget that keeps the image under 30 MB"
  say "size: $size bytes (budget $MAX_BINARY_BYTES)"

  # 3. The shipped config checks out with the binary the image ships.
  # (The collectors' URLs come from the environment, as in docker/compose.yaml.)
  VIGIL_POSTGRES_URL=postgres://vigil:vigil@postgres:5432/vigil?sslmode=disable VIGIL_REDIS_URL=redis://redis:6379/0 \
    "$bin" check config docker/vigil/vigil.yaml >/dev/null || die "vigil check config docker/vigil/vigil.yaml failed with the image's binary"
  say "docker/vigil/vigil.yaml: config OK"

  # 4. Run it as the image does (UID 65532, data on a volume) and scrape targets named the way
  #    Kubernetes DNS names them, through a private /etc/resolv.conf with search domains and
  #    ndots:5, answered by a local nameserver: the musl resolver, not glibc's, does the work.
  WORK=$(mktemp -d /tmp/vigil-image-smoke.XXXXXX)
  trap cleanup EXIT
  chmod 755 "$WORK"
  local ns=127.0.0.153 site_port api_port
  site_port=$(free_port); api_port=$(free_port)
  mkdir -p "$WORK/site" "$WORK/data"
  chown 65532:65532 "$WORK/data"
  printf '# TYPE smoke_requests_total counter\nsmoke_requests_total{code="200"} 42\n' >"$WORK/site/metrics"
  python3 -m http.server --bind 127.0.0.1 --directory "$WORK/site" "$site_port" >"$WORK/http.log" 2>&1 &
  PIDS+=($!)
  python3 scripts/dns_fixture.py "$ns" "$WORK/dns.log" \
    "demo.vigil-smoke.svc.cluster.local=127.0.0.1" >"$WORK/dns.out" 2>&1 &
  PIDS+=($!)
  wait_for 10 grep -q serving "$WORK/dns.out" || { cat "$WORK/dns.out" >&2; die "the test nameserver did not start on $ns:53"; }
  cat >"$WORK/resolv.conf" <<EOF
nameserver $ns
search vigil-smoke.svc.cluster.local svc.cluster.local cluster.local
options ndots:5 timeout:1 attempts:2
EOF
  cat >"$WORK/vigil.yaml" <<EOF
agent:
  listen: 127.0.0.1:$api_port
  data_dir: $WORK/data
  evaluation_interval: 1s
  shutdown_grace_period: 2s
scrape:
  interval: 1s
  timeout: 1s
  targets:
    - job: by-search-domain
      urls: [http://demo:$site_port/metrics]
    - job: unknown-name
      urls: [http://no-such-service:$site_port/metrics]
EOF
  chmod 644 "$WORK/vigil.yaml" "$WORK/resolv.conf"
  # shellcheck disable=SC2016 # the inner shell expands its own positional parameters
  unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && exec setpriv --reuid 65532 --regid 65532 --clear-groups "$2" run --config "$3"' \
    sh "$WORK/resolv.conf" "$bin" "$WORK/vigil.yaml" >"$WORK/vigil.log" 2>&1 &
  PIDS+=($!)
  local url=http://127.0.0.1:$api_port
  wait_for 30 "$bin" healthcheck --url "$url/healthz" --timeout 1s ||
    { tail -30 "$WORK/vigil.log" >&2; die "the image's binary did not become healthy on $url/healthz"; }
  say "vigil healthcheck: healthy (as UID 65532)"

  local targets=
  check_targets() {
    targets=$(python3 - "$url/api/v1/targets" <<'PY'
import json, sys, urllib.request
data = json.load(urllib.request.urlopen(sys.argv[1], timeout=2))["data"]["activeTargets"]
health = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in data}
good, bad = health.get("by-search-domain"), health.get("unknown-name")
print(f"by-search-domain={good} unknown-name={bad}")
sys.exit(0 if good and good[0] == "up" and bad and bad[0] == "down" else 1)
PY
)
  }
  wait_for 20 check_targets || {
    python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' "$url/api/v1/targets" >&2 || true
    echo "--- nameserver log" >&2; cat "$WORK/dns.log" >&2 || true
    echo "--- vigil log" >&2; tail -30 "$WORK/vigil.log" >&2
    die "the scrape through musl's resolver did not come out as expected (demo up, no-such-service down)"
  }
  say "targets: $targets"
  # The resolver walked the search list: the short name reached the nameserver fully qualified.
  grep -qx "A demo.vigil-smoke.svc.cluster.local" "$WORK/dns.log" ||
    die "the nameserver never saw 'A demo.vigil-smoke.svc.cluster.local':"$'\n'"$(sort -u "$WORK/dns.log")"
  say "nameserver saw: $(sort -u "$WORK/dns.log" | tr '\n' ',' | sed 's/,$//')"
  say "smoke test passed"
}

case "${1:-}" in
  build) build;;
  smoke) shift; smoke "$@";;
  *) sed -n '2,12p' "$0" >&2; exit 2;;
esac
