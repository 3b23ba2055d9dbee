# Say-and-See. `make demo` and `make test` bootstrap everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Raspberry Pi OS Bookworm combination: numpy 1.x + tflite-runtime, no TensorFlow.
DEVICE_VENV := .venv-device
DEVICE_STAMP := $(DEVICE_VENV)/.installed

FORMAT ?= synthetic
DATA ?=
TEST_DATA ?=
VAL_DATA ?=
SEED ?=
REPORTS ?= reports
HOST ?=
HOSTS ?= $(HOST)
CONFIG ?= config/default.toml

.PHONY: venv device-venv test-tools demo test test-long test-device test-arm64 train-tools train-sound train-generator train-marimba marimba-report export models bench deploy check clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[device,train,dev]'
	@touch $@

venv: $(STAMP)

$(DEVICE_STAMP): pyproject.toml
	@test -x $(DEVICE_VENV)/bin/python || $(PYTHON) -m venv $(DEVICE_VENV)
	$(DEVICE_VENV)/bin/python -m pip install -q 'numpy<2' 'tflite-runtime' pyserial mido pygame pytest
	@touch $@

device-venv: $(DEVICE_STAMP)

demo: $(STAMP)
	$(BIN)/python -m demo

# Tools some tests drive for real: sshd/ssh/rsync (deploy end to end), systemd-analyze (unit exposure),
# espeak-ng (the spoken words sound training renders).
# Installed with apt when running as root; otherwise those tests skip and say what to install.
TEST_TOOLS := sshd ssh rsync systemd-analyze espeak-ng
test-tools:
	@missing=""; for t in $(TEST_TOOLS); do command -v $$t >/dev/null || [ -x /usr/sbin/$$t ] || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing test tools:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server openssh-client rsync systemd espeak-ng >/dev/null; \
	  else echo "note: missing$$missing; deploy/service/speech tests will skip (apt-get install openssh-server openssh-client rsync systemd espeak-ng)"; fi; \
	fi

# Full suite in the workstation venv, then the device-side tests in the numpy<2 + tflite-runtime venv.
test: $(STAMP) $(DEVICE_STAMP) test-tools
	$(BIN)/python -m pytest -q -p no:cacheprovider
	$(MAKE) --no-print-directory test-device

# The few tests that take over a minute each (the marimba report and fine-tuning end to end, the quick
# bench), kept out of `make test` so it stays well under 15 minutes on 2 cores; CI runs them too.
test-long: $(STAMP) test-tools
	$(BIN)/python -m pytest -q -p no:cacheprovider -m 'long and not hardware'

test-device: $(DEVICE_STAMP)
	SAYSEE_TFLITE_RUNTIME=tflite_runtime $(DEVICE_VENV)/bin/python -m pytest -q -p no:cacheprovider -m 'device_venv and not hardware'

# The device side on arm64 Debian Bookworm (the Pi OS base) under qemu-user-static: a cached
# mmdebstrap root, the project's wheel + aarch64 wheels installed offline, the device-side tests,
# check, classify and a 10 s run --sim inside it. Root; installs its own tools with apt.
test-arm64:
	PYTHON=$(PYTHON) bash tools/arm64/test-arm64.sh

# espeak-ng renders the spoken words the sound embedding trains on; training only, the device never needs it.
# Installed with apt when running as root; otherwise training stops with one line saying what to install.
train-tools:
	@command -v espeak-ng >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing espeak-ng (sound training only)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null 2>&1 || \
	    { DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null; }; \
	  else echo "note: espeak-ng missing (apt-get install espeak-ng); sound training needs it"; fi; }

train-sound: $(STAMP) train-tools
	$(BIN)/python -m training.train_sound --format $(FORMAT) $(if $(DATA),--data $(DATA)) --out $(REPORTS)/sound

# The sound -> picture generator (dream mode), on the committed sound model's embedding.
train-generator: $(STAMP)
	$(BIN)/python -m training.train_generator --sound-model models/sound.tflite --out $(REPORTS)/generator --export models/generator.tflite

train-marimba: $(STAMP)
	$(BIN)/python -m training.train_marimba $(if $(DATA),--data $(DATA)) $(if $(TEST_DATA),--test-data $(TEST_DATA)) \
	  $(if $(VAL_DATA),--val-data $(VAL_DATA)) $(if $(SEED),--seed $(SEED)) --out $(REPORTS)/marimba

# The camera model on an instrument it never saw: zero-shot, then fine-tuned on 2 minutes of it (3 seeds).
marimba-report: $(STAMP)
	$(BIN)/python -m training.marimba_finetune_report --out $(REPORTS)/marimba-finetune

# Train on the synthetic defaults and refresh the committed models/*.tflite + *.json.
models: $(STAMP) train-tools
	$(BIN)/python -m training.train_sound --format synthetic --out $(REPORTS)/sound --export models/sound.tflite
	$(BIN)/python -m training.embedding_eval --model models/sound.tflite --out $(REPORTS)/sound
	$(BIN)/python -m training.mapping_projection --model models/sound.tflite
	$(BIN)/python -m training.train_generator --sound-model models/sound.tflite --out $(REPORTS)/generator --export models/generator.tflite
	$(BIN)/python -m training.train_marimba --out $(REPORTS)/marimba --export models/marimba.tflite

export: models

# basic-pitch (Spotify's transcriber, Apache-2.0) for the labeller comparison; see pyproject's bench extra.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[device,train,dev,bench]' && \
	  $(BIN)/python -m pip install -q --no-deps 'basic-pitch==0.4.0' && touch $@ || \
	  echo "note: basic-pitch not installed; the bench lists it as unavailable"

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m bench

check: $(STAMP)
	$(BIN)/python -m device check

# System python3 runs the deploy; the project venv (when built) has the pip and setuptools
# that build the wheel offline and download the box's pinned wheels.
deploy:
	@test -n "$(HOSTS)" || { echo "make deploy: set HOST=user@host (or HOSTS=\"a b c\")" >&2; exit 2; }
	$(PYTHON) systemd/deploy.py --config $(CONFIG) $(if $(DRY_RUN),--dry-run) \
	  $(if $(wildcard $(BIN)/python),--build-python $(BIN)/python) $(HOSTS)

clean:
	rm -rf $(VENV) $(DEVICE_VENV) build dist *.egg-info demo-output
