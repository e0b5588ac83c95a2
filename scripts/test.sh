#!/usr/bin/env bash
# The test command: installs and starts every real service the tests need (scripts/test-services.sh),
# then runs the whole suite (unit, integration and rules tests) against them.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -E 'test(daemon)'   # extra arguments go to cargo nextest run
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
scripts/test-services.sh start
state="${VIGIL_TEST_STATE_DIR:-/tmp/vigil-test-services}"
# shellcheck disable=SC1091
source "$state/env"
echo "test services ready in $(( $(date +%s) - started ))s"

if command -v cargo-nextest >/dev/null 2>&1; then
  # nextest runs each test in its own process, in parallel, with a retry-free, fail-loud profile.
  # nextest does not run doc tests; run them first so that nextest's summary closes the output.
  cargo test --doc --quiet
  # lib, bins and tests/ (benches are built by clippy --all-targets and run by `cargo bench`).
  cargo nextest run --workspace --no-fail-fast "$@"
else
  echo "cargo-nextest not found; using cargo test (install it with: cargo install cargo-nextest --locked)"
  cargo test --doc --quiet
  cargo test --workspace --no-fail-fast "$@"
fi
echo "scripts/test.sh finished in $(( $(date +%s) - started ))s"
