# Smart ISS Posts: each pipeline step is one target and one `python -m iss.exec.<step>` module.
# Bare `make` lists the targets. MODE (demo | dev) picks config/config_<MODE>.yaml.

.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL_TYPE ?= simple_conv
CLUSTERING ?= n2d
TRAIN_ARGS ?=

.PHONY: help venv system-deps mysql-up demo test bench bench-quality bench-ann bench-scale bench-fidelity bench-peers bench-e2e clean \
        generate_demo sync_collections populate_db sampling training encode features exec_clustering \
        reports facets posters serve serve_reports

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements.txt setup.py
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the requirements (only when they changed)

# Debian packages the tests use: Chromium for the page tests, rsync for the rsync sync source.
SYSTEM_PACKAGES := chromium chromium-driver rsync
system-deps: ## Install the Debian packages the tests need (chromium, chromedriver, rsync), if missing
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

mysql-up: ## Start the local MariaDB server if it is installed and not answering
	@if command -v mariadbd >/dev/null && ! mariadb-admin --protocol=tcp -h 127.0.0.1 -u root ping >/dev/null 2>&1; then \
	  start-stop-daemon --start --oknodo --background --exec "$$(command -v mariadbd)"; \
	  for i in $$(seq 1 30); do mariadb-admin --protocol=tcp -h 127.0.0.1 -u root ping >/dev/null 2>&1 && break; sleep 1; done; fi

# --- the pipeline, in data-flow order -----------------------------------------------------------
demo: export MODE = demo
demo: $(STAMP) ## Run the whole pipeline on a generated collection and the embedded SQLite database
	$(PY) -m iss.exec.demo

generate_demo: $(STAMP) ## Generate the synthetic ISS-like demo collection (data/external/demo)
	$(PY) -m iss.exec.generate_demo

sync_collections: $(STAMP) ## Copy new pictures (+ history) from the configured source into data/raw
	$(PY) -m iss.exec.sync_collections

populate_db: $(STAMP) ## Validate, decode and cache pictures; store pictures and locations in the database
	$(PY) -m iss.exec.populate_db

sampling: $(STAMP) ## Seeded train/test/valid split, recorded in the database
	$(PY) -m iss.exec.sampling

training: $(STAMP) ## Train an autoencoder (MODEL_TYPE=simple_conv, TRAIN_ARGS='--load demo --epochs 60')
	$(PY) -m iss.exec.training --model-type $(MODEL_TYPE) $(TRAIN_ARGS)

encode: $(STAMP) ## Encode every picture to latents with the trained encoder
	$(PY) -m iss.exec.encode --model-type $(MODEL_TYPE)

features: $(STAMP) ## Feature vectors to cluster: autoencoder latents, pixels or auto (FEATURES=kind, default features.kind)
	$(PY) -m iss.exec.features $(if $(FEATURES),--kind $(FEATURES),)

exec_clustering: $(STAMP) ## Cluster the features (CLUSTERING=n2d), store the run, render its reports
	$(PY) -m iss.exec.exec_clustering --clustering-type $(CLUSTERING) $(if $(FEATURES),--features $(FEATURES),)

reports: $(STAMP) ## Re-render a clustering run's reports (RUN_ID=N, default: the latest)
	$(PY) -m iss.exec.reports $(if $(RUN_ID),--run-id $(RUN_ID),)

facets: $(STAMP) ## Build the overview statistics and the picture explorer (reports/facets*.html)
	$(PY) -m iss.exec.facets

posters: $(STAMP) ## Render a poster from a template (data/posters)
	$(PY) -m iss.exec.posters --generate 1

serve: $(STAMP) ## Similar-picture search and explorer server on 127.0.0.1
	$(PY) -m iss.exec.serve

serve_reports: $(STAMP) ## Serve reports/ on 127.0.0.1:8008 for a browser
	$(PY) -m http.server 8008 --bind 127.0.0.1 --directory reports

# --- checks ---------------------------------------------------------------------------------------
test: $(STAMP) system-deps mysql-up ## Run the test suite (SQLite and the local MySQL/MariaDB server)
	$(PY) -m pytest

bench: $(STAMP) ## Run every benchmark; figures go to reports/bench/<area>.json
	$(PY) -m benchmarks.run

bench-quality: $(STAMP) ## Clustering quality on Fashion-MNIST and MNIST versus the N2D paper
	$(PY) -m benchmarks.quality

bench-fidelity: $(STAMP) ## Default pipeline vs UMAP(pixels) and PCA on real frames, demo, MNIST, Fashion-MNIST (~10 min; also in bench)
	$(PY) -m benchmarks.fidelity

# The peers in environments of their own (clustimage; fastdup, whose pins clash with clustimage's):
# nothing of theirs goes into .venv.
define peer_venv
$(1)/.installed: $(2)
	@test -x $(1)/bin/python || python3 -m venv $(1)
	$(1)/bin/python -m pip install --quiet -r $(2)
	@touch $$@
endef
$(eval $(call peer_venv,.venv-peers,requirements-peers.txt))
$(eval $(call peer_venv,.venv-fastdup,requirements-fastdup.txt))

bench-peers: $(STAMP) .venv-peers/.installed .venv-fastdup/.installed ## iss vs clustimage, fastdup, UMAP+k-means on 4 folders (PEERS_ARGS='--small')
	$(PY) -m benchmarks.peers $(PEERS_ARGS)

bench-ann: $(STAMP) ## Approximate search libraries on latents-like data (ANN_ARGS='--n 1000000 --libs faiss_ivf --no-iss'; '--sharded' for the Dask-built shards)
	$(PY) -m benchmarks.ann $(ANN_ARGS)

bench-scale: $(STAMP) ## Dask scaling: ingest, encode, prediction on 1 and 2 workers at 10k/100k pictures, ingest of 10k full-size frames (SCALE_ARGS='--sizes 10000 100000 --full 1000000')
	$(PY) -m benchmarks.scale $(SCALE_ARGS)

bench-e2e: $(STAMP) ## Every step on 14,000 generated 1280x720 frames: time, memory, profile (E2E_ARGS='--n 200')
	$(PY) -m benchmarks.e2e $(E2E_ARGS)

clean: ## Remove generated data, models and reports (keeps .venv)
	rm -rf data/raw data/interim data/processed data/external data/posters data/*.db models/* reports/*
	@touch data/.gitkeep models/.gitkeep reports/.gitkeep
