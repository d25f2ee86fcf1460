# The two commands a new machine needs: `make demo` and `make test` (both run the set-up first).
.PHONY: setup demo test bench
setup:
	./scripts/setup.sh

demo: setup
	cargo run --release -- demo

test: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo check --features cuda --lib --bins --test dataplane
	# The fuzz targets (their own workspace): compiled on stable, run with cargo-fuzz on nightly;
	# their own lock file (pinned, committed) and the root target directory, so the dependencies
	# checked above are reused.
	CARGO_TARGET_DIR=$${CARGO_TARGET_DIR:-$(CURDIR)/target} cargo check --manifest-path fuzz/Cargo.toml --bins
	cargo test --workspace
	python3 -m pytest -q clients/python
	python3 -m pytest -q scripts/tests

bench: setup
	cargo bench --bench trace
