# StreamForge queue manager. `make run` serves all four functions locally on the
# embedded default; `make test` runs the whole suite against real servers.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
HOST ?= 127.0.0.1
TARGET ?= all
PYTEST_ARGS ?=

.PHONY: help install bytecode run run-kafka servers image test test-fast lint bench demo clean

help:
	@echo "make run     serve start, stop, telemetry, status locally (embedded default, port $(PORT))"
	@echo "make test    run the test suite (starts real Kafka and kube-apiserver)"
	@echo "make demo    drive the seed examples through a local run"
	@echo "make image   build the container image without a daemon (buildah), push and pull it by digest"
	@echo "make bench   benchmarks; make lint; make install; make clean"

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The project's bytecode, checked by source hash (a container image's files carry
# normalised mtimes, and its read-only root can't cache bytecode at run time).
bytecode: install
	$(BIN)/python -m compileall -q --invalidation-mode checked-hash functions shared

run: bytecode
	$(BIN)/functions-framework --source functions/$(TARGET).py --target $(TARGET) --asgi \
		--host $(HOST) --port $(PORT)

# A real Kafka broker, the functions all-in-one publishing to it, and Knative's own
# KafkaSource data plane (rendered from eventing/) delivering queue-control to them; Ctrl-C
# stops them all. Needs Java (Kafka) and, first time, the data-plane build (Maven Central).
# KAFKA_ARGS e.g. "--kafka-port 9093 --work-dir .local/kafka".
run-kafka: bytecode
	bash tests/infra/kafka/fetch.sh
	bash tests/infra/dataplane/build.sh java
	$(BIN)/python -m tests.infra.run_kafka --host $(HOST) --port $(PORT) $(KAFKA_ARGS)

# Real servers for the tests, built or fetched once into ~/.cache/streamforge-qm
# (cold: ~20 min for the Kubernetes control plane, a few for the rest, among them Knative's
# own data planes: tests/infra/dataplane/build.sh).
# The Java data plane (mostly downloads and a one-threaded compiler) builds beside the Go ones.
servers:
	bash tests/infra/kafka/fetch.sh
	@bash tests/infra/dataplane/build.sh java & java=$$!; \
	bash tests/infra/k8s/build.sh && bash tests/infra/knative/build.sh && bash tests/infra/func/build.sh \
	  && bash tests/infra/dataplane/build.sh adapter mtping queue promtool registry kustomize cronref; rc=$$?; \
	wait $$java || rc=1; exit $$rc

# The container image (Containerfile), built without a Docker daemon: a Debian base from
# mmdebstrap, buildah, an OCI layout and a docker-archive in .local/image, then a push to a local
# registry and a pull back by digest (tests/infra/image/build.sh). Needs the Debian packages
# mmdebstrap buildah podman skopeo runc, and Go for the registry. ~1 min cold, seconds after a
# code change. `podman build .` or `docker build -f Containerfile .` build the same Containerfile.
image:
	bash tests/infra/image/build.sh

test: install servers image lint
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-fast: install
	$(BIN)/python -m pytest tests/shared tests/functions -q

# ruff, mypy, and the import contracts of pyproject.toml (the layers of shared/): part of make test
lint: install
	$(BIN)/ruff check functions shared tests
	$(BIN)/mypy shared
	$(BIN)/lint-imports --no-cache

bench: bytecode servers image
	$(BIN)/python -m tests.bench.image_bench
	$(BIN)/python -m tests.bench.functions_bench
	$(BIN)/python -m tests.bench.kafka_bench
	$(BIN)/python -m tests.bench.kube_bench
	$(BIN)/python -m tests.bench.concurrency_bench
	$(BIN)/python -m tests.bench.routing_bench
	$(BIN)/python -m tests.bench.events_bench
	$(BIN)/python -m tests.bench.cli_bench
	$(BIN)/python -m tests.bench.scale_bench
	$(BIN)/python -m tests.bench.index_cost_bench
	$(BIN)/python -m tests.bench.backfill_bench
	$(BIN)/python -m tests.bench.schedule_bench
	$(BIN)/python -m tests.bench.group_bench

demo: install
	@dir=$$(mktemp -d); \
	QM_LOCAL_DIR=$$dir $(BIN)/functions-framework --source functions/all.py --target all --asgi \
		--host 127.0.0.1 --port 18089 > $$dir/server.log 2>&1 & pid=$$!; \
	for i in $$(seq 50); do curl -sf http://127.0.0.1:18089/health/live >/dev/null && break; sleep 0.2; done; \
	$(BIN)/python -m tests.demo --url http://127.0.0.1:18089; rc=$$?; \
	kill $$pid; wait $$pid 2>/dev/null; rm -rf $$dir; exit $$rc

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache *.egg-info test-output
