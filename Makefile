# tf-zoneout: install, test, lint, bench. Everything runs inside .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= $(wildcard ../shared/data)

export TF_CPP_MIN_LOG_LEVEL ?= 2
ifneq ($(DATA_DIR),)
export ZONEOUT_DATA_DIR ?= $(abspath $(DATA_DIR))
endif

.PHONY: install test lint docs docs-serve bench demo clean check-core-install check-tf-serving-tensorflow gpu-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml changes, so a second `make install` is instant.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[experiments,serve,dev]"
	touch $(STAMP)

install: $(STAMP)

# pytest-xdist: one worker per core, each test file in one worker (the session's smoke-trained models
# are built at most once per worker).
test: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m pytest -q -n auto --dist worksteal --durations=15

# `pip install tf-zoneout` without extras, in a fresh venv: only tensorflow/keras/numpy, a ZoneoutLSTM
# trains, no generic top-level modules (a minute or two; CI runs it after `make test`).
check-core-install: install
	$(BIN)/python tests/check_core_install.py

# The TensorFlow of the TF Serving image docker-compose.yml pins, in a fresh venv: smoke exports of
# every kind load through its C++ loader and answer as ours do (a few minutes; CI runs it).
check-tf-serving-tensorflow: install
	$(BIN)/python tests/check_tf_serving_tensorflow.py

# On a machine with an NVIDIA GPU: a fresh venv with tensorflow[and-cuda] (WHEELS=DIR: offline, from
# wheels), the GPU-relevant tests with TF32 off, and bench.gpu_speed -> docs/bench/gpu-<device>.json.
# At most 10 minutes; exits 2 at once where TensorFlow sees no GPU.
gpu-check:
	timeout 600 $(PYTHON) tests/gpu_check.py $(if $(WHEELS),--wheels $(WHEELS))

lint: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

# The docs site (mkdocs-material; the API reference from the docstrings) into site/; --strict: a broken
# link or reference fails. `make docs-serve` previews it on http://127.0.0.1:8001/ as you edit.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

bench: install
	$(BIN)/python -m bench.rnn_speed --out auto
	$(BIN)/python -m bench.report
	$(BIN)/python -m bench.train_step_speed
	@if [ -d "$(MODEL_BASE)/char_ptb_demo" ]; then $(BIN)/python -m bench.serve_speed --model-base $(MODEL_BASE); \
	else echo "serving benchmark skipped: run 'make demo' first (it exports $(MODEL_BASE)/char_ptb_demo)"; fi

# Fresh clone -> data -> a small char-PTB zoneout model (a few minutes on 2 cores) -> export -> sample,
# score -> the service with its playground on http://127.0.0.1:$(PORT)/ (Ctrl-C stops it).
DEMO_RUN ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)
MODEL_BASE ?= models
PORT ?= 8000
demo: install
	$(BIN)/zoneout data download ptb_char
	$(BIN)/zoneout train char_ptb --preset demo --run-dir $(DEMO_RUN)
	$(BIN)/zoneout export $(DEMO_RUN) --model-base $(MODEL_BASE) --name char_ptb_demo
	$(BIN)/zoneout sample $(MODEL_BASE)/char_ptb_demo --prompt "the company said " --max-new-tokens 200 --seed 1 --temperature 0.7
	$(BIN)/zoneout score $(MODEL_BASE)/char_ptb_demo --text "the company said its profit rose in the third quarter"
	$(BIN)/zoneout serve --model-base $(MODEL_BASE) --port $(PORT)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info site
