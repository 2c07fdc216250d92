# `make run`: set up and run the whole pipeline on the corpora of data.sources.  `make test`: set up and run the tests.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup run test deps lock lock-upgrade lock-check experiments tuning clean seaweedfs

setup: $(VENV)/.installed

# Every package of every extra, dependencies of dependencies included, at the version and hashes of requirements.lock.
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The locks from pyproject.toml's dependencies, as PyPI stood on LOCK_DATE: requirements.lock with every
# extra (what setup installs), requirements-serve.lock with the serve extra alone, at the same versions.
# The resolver starts from the locked versions and keeps every one that still satisfies pyproject.toml, so
# a lock changes only where pyproject.toml did, whatever PyPI has published (or back-dated) since.
# After changing pyproject.toml's dependencies: `make lock`. To move every package to its newest release
# before LOCK_DATE: move LOCK_DATE, then `make lock-upgrade`. `make lock-check` (CI) fails on a stale lock.
LOCK_DATE := 2026-11-30T00:00:00Z
FRESH_LOCK := $(VENV)/requirements.lock.fresh
FRESH_SERVE_LOCK := $(VENV)/requirements-serve.lock.fresh
COMPILE := uv pip compile pyproject.toml --quiet --generate-hashes --universal \
	--python-version 3.11 --exclude-newer $(LOCK_DATE) --custom-compile-command "make lock"
LOCK := cp requirements.lock $(FRESH_LOCK) && $(COMPILE) --all-extras -o $(FRESH_LOCK)
SERVE_LOCK := cp requirements-serve.lock $(FRESH_SERVE_LOCK) && $(COMPILE) --extra serve -c requirements.lock -o $(FRESH_SERVE_LOCK)
lock: setup
	$(LOCK) && mv $(FRESH_LOCK) requirements.lock
	$(SERVE_LOCK) && mv $(FRESH_SERVE_LOCK) requirements-serve.lock

lock-upgrade: setup
	$(COMPILE) --refresh --upgrade --all-extras -o requirements.lock
	$(COMPILE) --refresh --upgrade --extra serve -c requirements.lock -o requirements-serve.lock

lock-check: setup
	$(LOCK)
	@diff -u requirements.lock $(FRESH_LOCK) || (echo "requirements.lock is stale: run make lock"; exit 1)
	$(SERVE_LOCK)
	@diff -u requirements-serve.lock $(FRESH_SERVE_LOCK) || (echo "requirements-serve.lock is stale: run make lock"; exit 1)

run: setup
	dvc repro

# Each stage's code deps in dvc.yaml: its script's import closure; then the README's generated tables (reruns among them).
deps: setup
	python -m ser.pipeline write
	python -m benchmarks.readme

test: setup
	python -m pytest

# The README's results tables, as queued DVC experiments (names: <model>-<protocol>). speaker: folds of
# unseen speakers; corpus: leave one corpus out; tess-only: the corpus protocol training on TESS
# alone and testing on each other corpus; text and random for completeness. The default params
# (default-speaker): with the workspace's results committed and current, it runs nothing.
# --allow-missing: a queued run works in a copy under .dvc/tmp/exps where the corpora's relative
# paths (../shared/data/...) do not exist; unchanged fetch stages are skipped and data/raw comes
# from the cache. (To change data.* itself, run in the workspace.)
QUEUE := dvc exp run --queue --allow-missing
TUTORIAL := -S model.arch=seed_lstm -S 'model.members=[]' -S model.deltas=0 -S model.normalize=none \
	-S 'model.dense_units=[128,64]' -S model.dropout=0.2 -S train.epochs=50 -S train.batch_size=64 \
	-S train.early_stopping=0 -S train.reduce_lr=0 -S train.calibrate=false -S augment.copies=0
BIGRU := -S model.arch=bigru -S 'model.members=[]'
LOGREG := -S model.arch=logreg -S 'model.members=[]'
CORPUS := -S split.protocol=corpus
TESS_ONLY := -S split.protocol=corpus -S 'split.train_corpora=[tess]'
TESS_ALONE := $(foreach corpus,ravdess emovo ased nemo,-S '~data.sources.$(corpus)')
experiments: setup
	$(QUEUE) -n default-speaker
	$(QUEUE) -n default-corpus $(CORPUS)
	$(QUEUE) -n seed_lstm-speaker $(TUTORIAL)
	$(QUEUE) -n seed_lstm-corpus $(TUTORIAL) $(CORPUS)
	$(QUEUE) -n ensemble-tess-only $(TESS_ONLY)
	$(QUEUE) -n seed_lstm-tess-only $(TUTORIAL) $(TESS_ONLY)
	$(QUEUE) -n ensemble-text -S split.protocol=text
	$(QUEUE) -n ensemble-random -S split.protocol=random
	$(QUEUE) -n ensemble-tess-speaker $(TESS_ALONE) -S split.folds=2
	dvc queue start -j 1

# The study behind the default params (speaker protocol): each idea on its own, with the settings
# it was measured with (BEFORE: the defaults before realistic augmentation and corpus weights were
# chosen). The default was chosen by validation scores only (val_loss in reports/train/metrics.json:
# the folds' mean on validation speakers carved from each fold's training speakers, never its test
# speakers).
BEFORE := -S train.balance=none -S augment.reverb_prob=0 -S augment.telephone_prob=0 -S augment.codec_prob=0
tuning: setup
	$(QUEUE) -n bigru-speaker $(BIGRU) $(BEFORE)
	$(QUEUE) -n logreg-speaker $(LOGREG) $(BEFORE)
	$(QUEUE) -n logreg-no-functionals $(LOGREG) $(BEFORE) -S model.functionals=none
	$(QUEUE) -n logreg-shrinkage-0 $(LOGREG) $(BEFORE) -S model.shrinkage=0
	$(QUEUE) -n logreg-shrinkage-50 $(LOGREG) $(BEFORE) -S model.shrinkage=50
	$(QUEUE) -n logreg-balance-corpus $(LOGREG) $(BEFORE) -S train.balance=corpus
	$(QUEUE) -n logreg-balance-speaker $(LOGREG) $(BEFORE) -S train.balance=speaker
	$(QUEUE) -n logreg-grid $(LOGREG) $(BEFORE) -S model.logreg_c=0.001,0.1
	$(QUEUE) -n ensemble-speaker $(BEFORE) -S 'model.members=[logreg,bigru]'
	$(QUEUE) -n ensemble-realistic -S train.balance=none -S 'model.members=[logreg,bigru]'
	$(QUEUE) -n ensemble3 $(BEFORE)
	$(QUEUE) -n ensemble3-realistic -S train.balance=none
	$(QUEUE) -n ensemble3-realistic-corpus -S train.balance=none -S split.protocol=corpus
	dvc queue start -j 1

clean:
	rm -rf $(VENV)

# A local S3 server to try a shared DVC remote (README: Sharing artifacts): SeaweedFS in the foreground (Ctrl+C
# stops it), its data in .seaweedfs/, S3 on 127.0.0.1:8333 with bucket ser and the example credentials of
# seaweedfs.json (for trying on this machine only: they are public). Its other servers listen on 127.0.0.1 too.
SEAWEEDFS_DIR := .seaweedfs
SEAWEEDFS_CONFIG := seaweedfs.json
SEAWEEDFS_URL := http://127.0.0.1:8333
SEAWEEDFS_CREDENTIAL = $(shell $(BIN)/python -c 'import json; print(json.load(open("$(SEAWEEDFS_CONFIG)"))["identities"][0]["credentials"][0]["$(1)"])')
seaweedfs: setup
	mkdir -p $(SEAWEEDFS_DIR)
	@echo "S3 on $(SEAWEEDFS_URL), bucket ser. To share this project's artifacts there:"
	@echo "  dvc remote add -d team s3://ser/dvc"
	@echo "  dvc remote modify team endpointurl $(SEAWEEDFS_URL)"
	@echo "  dvc remote modify --local team access_key_id $(call SEAWEEDFS_CREDENTIAL,accessKey)"
	@echo "  dvc remote modify --local team secret_access_key $(call SEAWEEDFS_CREDENTIAL,secretKey)"
	@echo "  dvc push"
	weed -logdir=$(SEAWEEDFS_DIR) mini -dir=$(SEAWEEDFS_DIR) -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port=8333 \
		-s3.config=$(SEAWEEDFS_CONFIG) -bucket=ser -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
		-master.telemetry=false -s3.localSocket=$(SEAWEEDFS_DIR)/s3.sock -filer.localSocket=$(SEAWEEDFS_DIR)/filer.sock
