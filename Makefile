# ai-router — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CONFIG ?= config/router.toml
# The running router that test-live and benchmark talk to.
URL ?= http://127.0.0.1:8080

.PHONY: help build demo test e2e eval lint fmt check clean bench profile faults soak fuzz cluster-test test-ui
.PHONY: up down restart ps health status logs logs-router logs-primary logs-ai image models
.PHONY: test-live benchmark review compose-check k8s-check k8s-sync

help: ## List every target with what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z0-9-]*:.*## / {printf "  \033[1m%-13s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the router binary (release) into target/release/ai-router
	cargo build --release --locked

demo: ## Run the router on a local demo model: no GPU, no cloud key (Ctrl-C stops it)
	infra/demo/demo.sh

test: ## Run every unit and integration test (fake backends on 127.0.0.1, no network)
	cargo test --locked --all-targets

faults: ## The fault suite (backends refusing, hanging, dying mid-stream, 1,000 requests then SIGTERM) and a real Prometheus scrape
	cargo test --locked --test faults
	tests/prometheus/scrape.sh

soak: ## Soak the release router for SOAK_SECS (600) on fake backends: memory, fds, failures, session logs
	tests/soak/soak.sh

cluster-test: ## Two replicas, a 3-host pool, fakes and a load client in network namespaces (root): a host cut off, a replica stopped (~70 s)
	tests/cluster/cluster.sh

fuzz: ## Fuzz request parsing with cargo fuzz for FUZZ_SECS (60; needs the nightly toolchain and cargo-fuzz)
	tests/fuzz/run.sh

test-ui: ## The dashboard in headless Chromium on fake backends: live overview, sessions, playground, prompts, refusal (screenshots in target/ui-screenshots/)
	tests/ui/run.sh

e2e: ## Smoke-test curl, the OpenAI SDK and raw SSE through the router against a real llama-server
	infra/demo/e2e.sh

eval: ## ai-router eval over the golden set against the demo's model (the 270M model's accuracy; ARGS=--against DIR, --json, --min-accuracy X)
	infra/demo/eval.sh $(ARGS)

bench: ## Router overhead next to a bare nginx hop: latency, throughput, streaming, memory (BENCH_QUICK=1: <1 min)
	tests/bench/bench.sh

profile: ## Instructions per request by component, under callgrind (apt-get install valgrind)
	python3 tests/bench/callgrind.py

lint: ## Check formatting, run clippy with warnings as errors, and shellcheck the scripts
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	# The fuzz crate is its own workspace: check it still builds against the router's API.
	cargo check --locked --quiet --manifest-path tests/fuzz/Cargo.toml --target-dir target/fuzz-check
	# The golden set the classifier is measured against: well-formed, every group covered.
	python3 evals/check.py >/dev/null
	@if command -v shellcheck >/dev/null; then shellcheck -x infra/demo/*.sh tests/*/*.sh .ci/run; \
	else echo "shellcheck is not installed: scripts not checked (apt-get install shellcheck)"; fi

fmt: ## Format the code
	cargo fmt --all

check: ## Validate CONFIG (default config/router.toml) and the prompts; print the effective settings
	cargo run --quiet --locked -- check --config $(CONFIG)

clean: ## Remove build output (the llama-server and model cache in ~/.cache/ai-router stays)
	cargo clean

# --- The GPU stack (Docker Compose, infra/): each says so when no Docker engine is there.

up: ## Start the GPU stack (router, two vLLM, Traefik; see infra/README.md) and wait until healthy
	infra/ops/compose.sh up

down: ## Stop and remove the stack's containers (weights, caches and logs stay)
	infra/ops/compose.sh down

restart: ## Restart the stack in order (or one service: make restart SERVICE=ai-router)
	infra/ops/compose.sh restart $(SERVICE)

ps: ## List the stack's containers and their state
	infra/ops/compose.sh ps

health: ## Each service's health and each router backend's status, with the reason when not healthy
	infra/ops/compose.sh health

status: ## One line: is the stack healthy and the router ready?
	infra/ops/compose.sh status

logs: ## Follow every service's logs (TAIL=200 lines first)
	infra/ops/compose.sh logs

logs-router: ## Follow the router's logs
	infra/ops/compose.sh logs ai-router

logs-primary: ## Follow the primary model's vLLM logs (vllm-primary)
	infra/ops/compose.sh logs vllm-primary

logs-ai: ## Follow the classifier's vLLM logs (vllm-router)
	infra/ops/compose.sh logs vllm-router

image: ## Build the router's Docker image ai-router:local from infra/Dockerfile
	infra/ops/compose.sh image

models: ## Download both models into the Hugging Face cache before the first make up (~26 GB)
	infra/ops/compose.sh models

# --- Checks against a running router, and of the infra files.

test-live: ## Integration checks against a running router at URL (default http://127.0.0.1:8080)
	python3 tests/live/test_live.py --url $(URL)

benchmark: ## Latency, throughput, concurrency and streaming figures for the router at URL
	python3 tests/live/benchmark.py --url $(URL)

review: ## Run the review board (agents/run-board) over the session logs; options in ARGS=, e.g. ARGS=--dry-run
	@if [[ -x agents/run-board ]]; then agents/run-board $(ARGS); \
	else echo "The review board (agents/run-board) is not in this checkout yet: it arrives with the improvement-loop work (issue 4)."; exit 1; fi

compose-check: ## Check the infra files: Compose, Dockerfile, make help, test-live on fake backends
	infra/check/all.sh

# --- Kubernetes (infra/kubernetes/): kustomize base and overlays, no cluster needed to check.

k8s-sync: ## Copy config/ and prompts/ into the Kubernetes base (run after editing them, then commit)
	infra/kubernetes/sync.sh

k8s-check: ## Render every Kubernetes overlay, validate its schema and the deployment rules (no cluster)
	infra/kubernetes/check.sh
