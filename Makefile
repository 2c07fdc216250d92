# `make run`: set up and run the whole pipeline on the corpora of data.sources.  `make test`: set up and run the tests.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup run test experiments tuning clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

run: setup
	dvc repro

test: setup
	python -m pytest

# The README's results table: the tutorial's model (seed_lstm with the tutorial's settings) and bigru
# under every protocol, as queued DVC experiments (names: <model>-<protocol>). speaker: folds of
# unseen speakers; corpus: leave one corpus out; tess-only: the corpus protocol training on TESS
# alone and testing on each other corpus; text and random for completeness. bigru-speaker is the
# default params: with the workspace's results committed and current, it runs nothing.
# --allow-missing: a queued run works in a copy under .dvc/tmp/exps where the corpora's relative
# paths (../shared/data/...) do not exist; unchanged fetch stages are skipped and data/raw comes
# from the cache. (To change data.* itself, run in the workspace.)
QUEUE := dvc exp run --queue --allow-missing
TUTORIAL := -S model.arch=seed_lstm -S model.deltas=0 -S model.normalize=none -S 'model.dense_units=[128,64]' \
	-S model.dropout=0.2 -S train.epochs=50 -S train.batch_size=64 -S train.early_stopping=0 -S train.reduce_lr=0 \
	-S augment.copies=0
CORPUS := -S split.protocol=corpus
TESS_ONLY := -S split.protocol=corpus -S 'split.train_corpora=[tess]'
experiments: setup
	$(QUEUE) -n seed_lstm-speaker $(TUTORIAL)
	$(QUEUE) -n bigru-speaker
	$(QUEUE) -n seed_lstm-corpus $(TUTORIAL) $(CORPUS)
	$(QUEUE) -n bigru-corpus $(CORPUS)
	$(QUEUE) -n seed_lstm-tess-only $(TUTORIAL) $(TESS_ONLY)
	$(QUEUE) -n bigru-tess-only $(TESS_ONLY)
	$(QUEUE) -n seed_lstm-text $(TUTORIAL) -S split.protocol=text
	$(QUEUE) -n bigru-text -S split.protocol=text
	$(QUEUE) -n seed_lstm-random $(TUTORIAL) -S split.protocol=random
	$(QUEUE) -n bigru-random -S split.protocol=random
	$(QUEUE) -n bigru-tess-speaker -S '~data.sources.ravdess' -S '~data.sources.emovo' -S split.folds=2
	dvc queue start -j 1

# The tuning grid behind the default params (speaker protocol), scored on validation only: val_loss
# in reports/train/metrics.json, the folds' mean on validation speakers carved from each fold's
# training speakers (never its test speakers).
tuning: setup
	$(QUEUE) -S model.rnn_units=64,128 -S model.normalize=speaker,utterance
	$(QUEUE) -n no-augment -S augment.copies=0
	dvc queue start -j 1

clean:
	rm -rf $(VENV)
