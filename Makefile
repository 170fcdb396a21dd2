# ai-router — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CONFIG ?= config/router.toml

.PHONY: help build demo test e2e lint fmt check clean

help: ## List every target with what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z0-9-]*:.*## / {printf "  \033[1m%-8s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the router binary (release) into target/release/ai-router
	cargo build --release --locked

demo: ## Run the router on a local demo model: no GPU, no cloud key (Ctrl-C stops it)
	infra/demo/demo.sh

test: ## Run every unit and integration test (fake backends on 127.0.0.1, no network)
	cargo test --locked --all-targets

e2e: ## Smoke-test curl, the OpenAI SDK and raw SSE through the router against a real llama-server
	infra/demo/e2e.sh

lint: ## Check formatting, run clippy with warnings as errors, and shellcheck the scripts
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	@if command -v shellcheck >/dev/null; then shellcheck -x infra/demo/*.sh .ci/run; \
	else echo "shellcheck is not installed: scripts not checked (apt-get install shellcheck)"; fi

fmt: ## Format the code
	cargo fmt --all

check: ## Validate CONFIG (default config/router.toml) and the prompts; print the effective settings
	cargo run --quiet --locked -- check --config $(CONFIG)

clean: ## Remove build output (the llama-server and model cache in ~/.cache/ai-router stays)
	cargo clean
