# Developer shortcuts. CI runs .ci/run (fmt check, clippy, scripts/test.sh).
.PHONY: fmt lint test services bench run check

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

test:
	scripts/test.sh

services:
	scripts/test-services.sh start

bench:
	cargo bench

run:
	cargo run --release -- run

check:
	cargo run --quiet -- check config vigil.yaml
