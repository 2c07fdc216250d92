# `make run`: set up and run the whole pipeline on TESS.  `make test`: set up and run the tests.
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

# The README's results table: every architecture under every protocol, as queued DVC experiments.
QUEUE := dvc exp run --queue --allow-missing
TUTORIAL := -S model.arch=seed_lstm -S model.deltas=0 -S model.normalize=none -S 'model.dense_units=[128,64]' \
	-S model.dropout=0.2 -S train.epochs=50 -S train.batch_size=64 -S train.early_stopping=0 -S train.reduce_lr=0 \
	-S augment.copies=0
experiments: setup
	$(QUEUE) -n seed_lstm-speaker $(TUTORIAL)
	$(QUEUE) -n seed_lstm-word $(TUTORIAL) -S split.protocol=word
	$(QUEUE) -n seed_lstm-random $(TUTORIAL) -S split.protocol=random
	$(QUEUE) -n cnn1d-speaker -S model.arch=cnn1d
	$(QUEUE) -n cnn1d-word -S model.arch=cnn1d -S split.protocol=word
	$(QUEUE) -n cnn1d-random -S model.arch=cnn1d -S split.protocol=random
	$(QUEUE) -n bigru-word -S split.protocol=word
	$(QUEUE) -n bigru-random -S split.protocol=random
	dvc queue start -j 1

# The tuning grid behind the default params (speaker protocol), scored on validation words of the training speaker.
tuning: setup
	$(QUEUE) -S model.rnn_units=64,128 -S model.normalize=speaker,utterance
	$(QUEUE) -n no-augment -S augment.copies=0
	dvc queue start -j 1

clean:
	rm -rf $(VENV)
