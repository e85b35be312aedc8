"""sample_limit: a deterministic subset that only grows when the limit grows."""

from __future__ import annotations

import hashlib

from qwen_pipe.cells import select_samples

SAMPLES = [{"id": f"task/{i}"} for i in range(500)]


def test_subset_is_deterministic_and_in_dataset_order():
    first = select_samples(SAMPLES, 30, seed=0)
    assert first == select_samples(list(SAMPLES), 30, seed=0)
    positions = [SAMPLES.index(s) for s in first]
    assert positions == sorted(positions)


def test_raising_the_limit_keeps_earlier_samples():
    small = {s["id"] for s in select_samples(SAMPLES, 30)}
    large = {s["id"] for s in select_samples(SAMPLES, 100)}
    assert len(small) == 30 and len(large) == 100 and small < large


def test_subset_is_a_pure_function_of_ids():
    """Stable across machines and Python versions: it is sha256 of `seed:id`, nothing else."""
    expected = sorted(SAMPLES, key=lambda s: hashlib.sha256(f"7:{s['id']}".encode()).hexdigest())[:5]
    assert {s["id"] for s in select_samples(SAMPLES, 5, seed=7)} == {s["id"] for s in expected}
    assert select_samples(SAMPLES, 5, seed=7) != select_samples(SAMPLES, 5, seed=8)


def test_no_limit_or_large_limit_is_everything():
    assert select_samples(SAMPLES, None) == SAMPLES
    assert select_samples(SAMPLES, 10_000) == SAMPLES
