"""Per-problem time limits: floor + factor x the reference's runtime, measured once per machine."""

from __future__ import annotations

import json

import pytest

from qwen_pipe.sandbox import Program, calibration
from qwen_pipe.sandbox.calibration import TimeoutPolicy, calibrate

FAST = Program("fast", "def f():\n    return 1\n", test="assert f() == 1\n")
SLOW = Program("slow", "import time\ndef f():\n    time.sleep(0.4)\n    return 1\n", test="assert f() == 1\n")
BROKEN = Program("broken", "def f():\n    return 2\n", test="assert f() == 1\n")


def test_policy_is_a_floor_plus_a_multiple():
    assert TimeoutPolicy(floor_s=2.0, factor=10.0).timeout_for(0.25) == 4.5


def test_limits_follow_the_reference_runtime_and_are_cached(tmp_path, monkeypatch):
    policy = TimeoutPolicy(floor_s=1.0, factor=5.0)
    first = calibrate({"fast": FAST, "slow": SLOW, "broken": BROKEN}, tmp_path, policy, workers=2)
    assert first["slow"].reference_s >= 0.4 > first["fast"].reference_s
    assert first["slow"].timeout_s == pytest.approx(1.0 + 5.0 * first["slow"].reference_s, abs=1e-3)
    assert first["fast"].timeout_s < first["slow"].timeout_s
    assert first["fast"].reference_status == "pass"
    assert first["broken"].reference_status.startswith("fail")
    [cache] = tmp_path.glob("*.json")
    assert {e["problem"] for e in json.loads(cache.read_text()).values()} == {"fast", "slow", "broken"}

    measured = []

    def record(programs, workers=None, config=None):
        measured.extend(p.id for p in programs)
        return original(programs, workers, config)

    original = calibration.run_programs
    monkeypatch.setattr(calibration, "run_programs", record)
    again = calibrate({"fast": FAST, "slow": SLOW, "broken": BROKEN}, tmp_path, policy, workers=2)
    assert measured == ["broken"]  # passing references come from the cache; a failing one is measured again
    assert again["slow"] == first["slow"]


def test_a_changed_program_is_measured_again(tmp_path):
    calibrate({"fast": FAST}, tmp_path, workers=1)
    changed = Program("fast", FAST.source, test="assert f() == 1\nassert f() != 2\n")
    assert calibration.program_key(changed) != calibration.program_key(FAST)
    calibrate({"fast": changed}, tmp_path, workers=1)
    [cache] = tmp_path.glob("*.json")
    assert len(json.loads(cache.read_text())) == 2


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_PIPE_CALIBRATION_DIR", str(tmp_path / "here"))
    assert calibration.default_cache_dir() == tmp_path / "here"
