"""params.yaml as typed, validated configuration (one pydantic model per stage's group)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qwen_pipe.errors import QwenPipeError, unknown_name
from qwen_pipe.models.registry import BUILTIN_MODELS
from qwen_pipe.models.spec import ModelSpec

PARAMS_FILE = Path("params.yaml")
MODELS_DIR = Path("data/models")  # where the build_models stage writes tiny models
THINKING_MAX_NEW_TOKENS = 32768  # Qwen3 report: thinking runs may use up to 32,768 output tokens


def output_budget(override: int | None, thinking: bool, task_budget: int) -> int:
    """Output tokens a request may use: the run's override, else thinking's budget, else the task's."""
    return override or (THINKING_MAX_NEW_TOKENS if thinking else task_budget)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Preset(Strict):
    """Engine arguments (vLLM names) and sampling defaults of one preset."""

    gpu_memory_utilization: float = Field(gt=0, le=1)
    max_model_len: int = Field(gt=0)
    max_num_seqs: int = Field(gt=0)
    max_num_batched_tokens: int = Field(gt=0)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] = "auto"
    quantization: Literal["fp8", "awq", "gptq", "bitsandbytes"] | None = None
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    tensor_parallel_size: int = Field(1, gt=0)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = -1
    presence_penalty: float = 0.0

    def engine_args(self, max_positions: int) -> dict:
        """vLLM engine arguments; max_model_len is capped at the model's own context."""
        return {
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_model_len": min(self.max_model_len, max_positions),
            "max_num_seqs": self.max_num_seqs,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "dtype": self.dtype,
            "kv_cache_dtype": self.kv_cache_dtype,
            "quantization": self.quantization,
            "enable_prefix_caching": self.enable_prefix_caching,
            "enforce_eager": self.enforce_eager,
            "tensor_parallel_size": self.tensor_parallel_size,
        }


class TinyModel(Strict):
    """A random-weight Qwen3 model built locally (the embedded default's stand-in for a real checkpoint)."""

    num_hidden_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    max_position_embeddings: int = Field(4096, gt=0)
    seed: int = 0
    size_class: Literal["small", "large"]

    def build(self, folder: Path) -> None:
        """Write the model as a Hugging Face folder (same seed, same bytes)."""
        from qwen_pipe.models.tiny import build_tiny_model

        build_tiny_model(folder, **self.model_dump(exclude={"size_class"}))

    def spec(self, name: str, models_dir: Path = MODELS_DIR) -> ModelSpec:
        from qwen_pipe.models.tiny import tiny_qwen3_architecture

        arch = tiny_qwen3_architecture(**self.model_dump(exclude={"seed", "size_class"}), dtype="bfloat16")
        return ModelSpec(
            name=name,
            hf_id=str(models_dir / name),
            family="tiny-qwen3",
            nominal_size=f"{arch.parameter_count() / 1e6:.1f}M",
            size_class=self.size_class,
            parameters=arch.parameter_count(),
            architecture=arch,
            chat=True,
            supports_thinking=True,
            tiny=True,
        )


class Run(Strict):
    """The active run: what the DVC matrices iterate over (set from a profile)."""

    models: list[str] = Field(min_length=1)
    presets: list[str] = Field(min_length=1)
    datasets: list[str] = Field(min_length=1)


class EngineParams(Strict):
    name: str = "vllm"  # checked where engines are loaded (engines/registry.py), a layer above this one
    # openai: a server, e.g. http://host:8000/v1 (a `vllm serve` endpoint), or a list of servers of the
    # same model, sent requests in turn (round-robin)
    base_url: str | list[str] | None = None
    api_key_env: str = "OPENAI_API_KEY"  # openai: the variable holding the key (never the key itself)
    concurrency: int = Field(16, gt=0)  # openai: requests in flight per server
    timeout_s: float = Field(600.0, gt=0)  # openai: one request's wait for its answer
    retry_s: float = Field(300.0, ge=0)  # openai: how long a request is retried on 429/5xx/no connection
    enforce_eager: bool | None = None  # None: the preset decides; true skips compilation (CPU runs, tests)


class FetchParams(Strict):
    source: Literal["embedded", "mirror", "hub", "auto"] = "auto"
    data_dir: str | None = None  # mirror folder; QWEN_PIPE_DATA_DIR is used when this is null


class ValidateParams(Strict):
    device_memory_gb: float = Field(80.0, gt=0)  # one H100 80GB
    activation_overhead_gb: float = Field(2.0, ge=0)  # CUDA context, activations, graphs


class CoverageParams(Strict):
    prompts: int = Field(32, gt=0)
    prompt_tokens: int = Field(128, gt=0)
    max_new_tokens: int = Field(64, gt=0)
    load_format: Literal["auto", "dummy"] = "auto"


class CostScalingParams(Strict):
    """The one model x preset the cost_scaling stage sweeps: named here, so that changing the run's models
    or presets does not rerun the sweep."""

    model: str
    preset: str = "balanced"


class GenerateParams(Strict):
    presets: list[str] = Field(
        ["balanced"], min_length=1
    )  # a matrix axis: each preset's results side by side
    seed: int = 1234
    sample_seed: int = 0  # picks the sample_limit subset
    thinking: bool = False  # Qwen3 thinking mode; the <think> block is stripped before scoring
    max_new_tokens: int | None = Field(None, gt=0)  # None: each task's own budget, capped by the preset
    # sampled runs (temperature > 0): answers per request, each with its own seed; scored apart and averaged
    repeats: int = Field(1, ge=1)
    flush_every: int = Field(64, gt=0)  # responses per cache chunk: a killed run loses at most this many


class TaskParams(Strict):
    sample_limit: int | None = Field(None, gt=0)  # None: the whole split
    shots: int | None = Field(None, ge=0)  # None: the published setting
    format: Literal["letters"] | None = None  # multiple choice asked as a letter choice (chat models)


class ScoreParams(Strict):
    workers: int | None = Field(None, gt=0)  # code execution processes; None: one per core
    flush_every: int = Field(64, gt=0)  # samples scored between flushes of the score cache


class JudgeParams(Strict):
    """The LLM judge of the judged datasets (MT-Bench, Arena-Hard): the judge stage."""

    # a registry model (local engines, or a registry model a server serves: api completions); with engine
    # openai and api chat, the name the API knows (e.g. gpt-4-0613). null: no judge (none may be needed)
    model: str | None = None
    engine: Literal["vllm", "transformers", "openai"] = "vllm"
    preset: str = "balanced"  # local engines: the preset the judge loads with
    # openai: e.g. https://api.openai.com/v1 or http://judge-host:8000/v1 (or a list of servers, round-robin)
    base_url: str | list[str] | None = None
    api: Literal["completions", "chat"] = "completions"  # openai: chat sends the messages (API judges)
    api_key_env: str = "OPENAI_API_KEY"  # openai: the variable holding the key (never the key itself)
    concurrency: int = Field(16, gt=0)  # openai: requests in flight
    temperature: float = Field(0.0, ge=0)  # FastChat and Arena-Hard judge at 0
    max_new_tokens: int | None = Field(None, gt=0)  # null: each benchmark's published judge budget
    repeats: int = Field(1, ge=1)  # judgments of each answer: the score is their median, with the spread
    # generate: the judge writes its judgment and the verdict is read from it (FastChat, Arena-Hard);
    # likelihood: the most likely valid verdict, scored by log-likelihood (no explanation; not the published
    # protocol; any judge that gives log-likelihoods, even a random-weight one, gives a verdict)
    verdict: Literal["generate", "likelihood"] = "generate"
    seed: int = 0
    flush_every: int = Field(64, gt=0)  # judgments per cache chunk

    @property
    def api_judge(self) -> bool:
        """Judged through a chat API under its own name (no registry model, no chat template here)."""
        return self.engine == "openai" and self.api == "chat"


class ClusterParams(Strict):
    """A Ray cluster for the engine work (docs/cluster.md). It changes where work runs, never a result:
    no stage depends on it, and results land in the same caches as on one machine."""

    address: str | None = None  # auto | ray://host:10001 | host:6379; null: this machine only
    max_retries: int = Field(3, ge=0)  # a unit whose worker died is run again this often
    num_cpus: float = Field(1.0, gt=0)  # CPUs a unit holds (besides num_gpus = its tensor-parallel size)


class ReadinessParams(Strict):
    # carry on when a readiness criterion fails: the readiness stage records FAIL and exits 0
    allow_unready: bool = False


class Params(Strict):
    profile: str
    protocol: str = "qwen-pipe"  # how tasks are asked and graded (qwen_pipe/protocols.py)
    run: Run
    engine: EngineParams = EngineParams()
    model_registry: dict[str, ModelSpec] = {}
    tiny_models: dict[str, TinyModel] = {}
    presets: dict[str, Preset]
    preset_overrides: dict[str, dict[str, dict]] = {}  # model -> preset -> fields replacing the preset's
    fetch: FetchParams = FetchParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    coverage: CoverageParams = CoverageParams()
    cost_scaling: CostScalingParams | None = None  # None: no cost_scaling stage can run
    generate: GenerateParams = GenerateParams()
    tasks: dict[str, TaskParams] = {}
    score: ScoreParams = ScoreParams()
    judge: JudgeParams = JudgeParams()
    readiness: ReadinessParams = ReadinessParams()
    cluster: ClusterParams = ClusterParams()
    profiles: dict[str, dict] = {}

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _names_exist(self) -> Params:
        from qwen_pipe.protocols import check_protocol
        from qwen_pipe.tasks import task_names

        check_protocol(self.protocol)
        known_models = self.model_names()
        for name in self.run.models:
            if name not in known_models:
                raise unknown_name("model", name, known_models)
        for name in [*self.run.presets, *self.generate.presets]:
            if name not in self.presets:
                raise unknown_name("preset", name, list(self.presets))
        if len(set(self.generate.presets)) != len(self.generate.presets):
            raise QwenPipeError(
                f"generate.presets lists a preset twice: {self.generate.presets}", "list each preset once"
            )
        for name in [*self.run.datasets, *self.tasks]:
            if name not in task_names():
                raise unknown_name("dataset", name, task_names())
        for name in self.run.datasets:
            if name not in self.tasks:  # dvc.yaml tracks tasks.<dataset> per cell
                raise QwenPipeError(
                    f"dataset {name} is in run.datasets but has no entry under tasks",
                    f"add `{name}: {{}}` under tasks in params.yaml",
                )
        if self.cost_scaling is not None:
            if self.cost_scaling.model not in known_models:
                raise unknown_name("cost_scaling model", self.cost_scaling.model, known_models)
            if self.cost_scaling.preset not in self.presets:
                raise unknown_name("cost_scaling preset", self.cost_scaling.preset, list(self.presets))
        self._check_judge(known_models)
        for model, by_preset in self.preset_overrides.items():
            if model not in known_models:
                raise unknown_name("model in preset_overrides", model, known_models)
            for preset in by_preset:
                self.preset_for(model, preset)
        return self

    def _check_judge(self, known_models: list[str]) -> None:
        from qwen_pipe.tasks import JUDGED

        judge = self.judge
        if judge.model is None:
            judged = [d for d in self.run.datasets if d in JUDGED]
            if judged:
                raise QwenPipeError(
                    f"run.datasets has {', '.join(judged)}, scored by an LLM judge, but judge.model is not set",
                    "name a judge under judge.model in params.yaml (see docs/judge.md)",
                )
            return
        if not judge.api_judge and judge.model not in known_models:
            raise unknown_name("judge model", judge.model, known_models)
        if not judge.api_judge and not self.model(judge.model).chat:
            raise QwenPipeError(
                f"judge.model {judge.model} is a base model: a judge needs a chat template",
                "name a post-trained (chat) model as judge.model",
            )
        if judge.engine != "openai" and judge.preset not in self.presets:
            raise unknown_name("judge preset", judge.preset, list(self.presets))
        if judge.engine == "openai" and not judge.base_url:
            raise QwenPipeError(
                "judge.engine is openai but judge.base_url is not set",
                "set judge.base_url (e.g. https://api.openai.com/v1) or judge with a local engine",
            )
        if judge.verdict == "likelihood" and judge.api_judge:
            raise QwenPipeError(
                "judge.verdict likelihood needs log-likelihoods, which a chat API does not give",
                "use judge.verdict generate, or a completions server (judge.api completions)",
            )
        if judge.verdict == "likelihood" and judge.repeats > 1:
            raise QwenPipeError(
                "judge.verdict likelihood is deterministic: repeats would give the same verdicts",
                "set judge.repeats: 1",
            )
        if judge.repeats > 1 and judge.temperature == 0 and judge.engine != "openai":
            raise QwenPipeError(
                f"judge.repeats is {judge.repeats} but a local judge at temperature 0 gives the same verdicts "
                "every time",
                "set judge.temperature above 0 for repeats, or judge.repeats: 1",
            )

    def model_names(self) -> list[str]:
        return sorted({*BUILTIN_MODELS, *self.model_registry, *self.tiny_models})

    def model(self, name: str) -> ModelSpec:
        if name in self.tiny_models:
            return self.tiny_models[name].spec(name)
        if name in self.model_registry:
            return self.model_registry[name]
        if name in BUILTIN_MODELS:
            return BUILTIN_MODELS[name].model_copy(deep=True)
        raise unknown_name("model", name, self.model_names())

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            raise unknown_name("preset", name, list(self.presets))
        return self.presets[name]

    def preset_for(self, model: str, preset: str) -> Preset:
        """The preset with this model's overrides applied (e.g. fewer sequences for models without GQA)."""
        base = self.preset(preset)
        override = self.preset_overrides.get(model, {}).get(preset)
        if not override:
            return base
        try:
            return Preset.model_validate({**base.model_dump(), **override})
        except ValidationError as error:
            raise QwenPipeError(
                f"preset_overrides.{model}.{preset}: {_describe(error)}",
                "correct that override in params.yaml",
            ) from None

    def task_params(self, dataset: str) -> TaskParams:
        return self.tasks.get(dataset, TaskParams())


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']}" + (f" (got {first['input']!r})" if "input" in first else "")


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; every problem becomes one line naming the key and the fix."""
    if not path.is_file():
        raise QwenPipeError(f"{path} not found", "run from the repository root or pass --params PATH")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise QwenPipeError(
            f"{path} is not valid YAML{where}: {getattr(error, 'problem', error)}",
            "fix the YAML syntax there",
        ) from None
    if not isinstance(raw, dict):
        raise QwenPipeError(
            f"{path} must hold a mapping of parameter groups", "see the README's params section"
        )
    return params_from(raw, str(path))


def params_from(raw: dict, source: str) -> Params:
    """Params validated from a parsed document; every problem one line naming `source` and the fix."""
    try:
        return Params.model_validate(raw)
    except QwenPipeError:
        raise
    except ValidationError as error:
        cause = error.errors()[0].get("ctx", {}).get("error")
        if isinstance(cause, QwenPipeError):
            raise cause from None
        raise QwenPipeError(
            f"{source}: {_describe(error)}", "correct that value (see params.yaml comments)"
        ) from None
