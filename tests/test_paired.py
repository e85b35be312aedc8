"""Paired statistics against known values (qwen_pipe/scoring/paired.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from qwen_pipe.scoring.paired import bootstrap_interval, compare_paired, mcnemar_exact, unpaired


def _items(values: list[float]) -> dict[str, float]:
    return {f"q{i}": v for i, v in enumerate(values)}


def test_mcnemar_on_a_hand_made_table() -> None:
    # 10 items only A gets right, 2 only B, 30 both, 8 neither: p = 2 * P(X <= 2), X ~ Bin(12, 1/2) = 158/4096
    a = [1] * 10 + [0] * 2 + [1] * 30 + [0] * 8
    b = [0] * 10 + [1] * 2 + [1] * 30 + [0] * 8
    assert mcnemar_exact(a, b) == pytest.approx(158 / 4096)
    assert mcnemar_exact(a, b) == pytest.approx(binomtest(2, 12, 0.5).pvalue)
    assert mcnemar_exact(b, a) == mcnemar_exact(a, b)  # two-sided


def test_mcnemar_ignores_concordant_items_and_caps_at_one() -> None:
    assert mcnemar_exact([1, 1, 0, 0], [1, 1, 0, 0]) == 1.0
    assert mcnemar_exact([1, 0], [0, 1]) == 1.0  # one each way: 2 * 3/4 capped
    # adding agreeing items changes nothing
    assert mcnemar_exact([1] * 5 + [1] * 100, [0] * 5 + [1] * 100) == pytest.approx(2 / 32)


def test_bootstrap_interval_width_on_a_known_proportion() -> None:
    values = np.array([1.0] * 200 + [0.0] * 200)  # p = 0.5, n = 400: se = 0.025, 95% width ~ 0.098
    low, high = bootstrap_interval(values)
    assert low < 0.5 < high
    assert high - low == pytest.approx(2 * 1.96 * 0.025, rel=0.08)


def test_bootstrap_is_seeded_and_resamples_every_block() -> None:
    values = np.random.default_rng(3).random(50)
    assert bootstrap_interval(values, seed=7) == bootstrap_interval(values, seed=7)
    assert bootstrap_interval(values, seed=7) != bootstrap_interval(values, seed=8)
    # 10,000 resamples drawn in blocks: a second block that repeated the first would narrow nothing, but a
    # resample count that is not a multiple of the block must still work
    low, high = bootstrap_interval(values, resamples=2_500)
    assert low < values.mean() < high


def test_bootstrap_refuses_nothing() -> None:
    with pytest.raises(ValueError):
        bootstrap_interval([])


def test_paired_interval_is_narrower_than_the_unpaired_one_on_correlated_items() -> None:
    rng = np.random.default_rng(0)
    a = (rng.random(300) < 0.6).astype(float)
    b = a.copy()
    flip = rng.choice(
        np.flatnonzero(a == 0), 15, replace=False
    )  # B fixes 15 of A's wrong answers, breaks none
    b[flip] = 1.0
    paired = compare_paired(_items(list(a)), _items(list(b)))
    se = lambda x: x.std(ddof=1) / math.sqrt(x.size)  # noqa: E731
    naive = unpaired(a.mean(), se(a), b.mean(), se(b), 300)
    assert paired["delta"] == pytest.approx(b.mean() - a.mean())
    assert paired["high"] - paired["low"] < (naive["high"] - naive["low"]) / 2
    assert paired["test"] == "mcnemar_exact" and paired["significant"]  # discordant 15 vs 0 items
    assert paired["p_value"] == pytest.approx(2 / 2**15)
    assert naive["significant"] is False  # the unpaired test misses what the paired one sees


def test_identical_systems_are_not_significantly_different() -> None:
    scores = _items([1, 0, 1, 1, 0] * 20)
    result = compare_paired(scores, dict(scores))
    assert result["delta"] == 0 and result["significant"] is False and result["p_value"] == 1.0


def test_a_small_difference_on_few_items_is_within_noise() -> None:
    a = _items([1, 0, 1, 0, 1, 0, 1, 0])
    b = _items([1, 1, 1, 0, 1, 0, 1, 0])  # one item better
    result = compare_paired(a, b)
    assert result["delta"] == pytest.approx(1 / 8)
    assert result["significant"] is False and result["p_value"] == 1.0


def test_non_binary_scores_use_the_bootstrap_interval() -> None:
    a = _items([0.2, 0.4, 0.5, 0.3] * 25)
    b = {k: v + 0.1 for k, v in a.items()}
    result = compare_paired(a, b)
    assert result["test"] == "paired_bootstrap" and result["p_value"] is None
    assert result["low"] == pytest.approx(0.1) and result["high"] == pytest.approx(0.1)
    assert result["significant"] is True


def test_only_shared_items_are_paired_and_the_rest_are_counted() -> None:
    a = {"x": 1.0, "y": 0.0, "only-a": 1.0}
    b = {"x": 1.0, "y": 1.0, "only-b": 0.0, "only-b2": 0.0}
    result = compare_paired(a, b)
    assert (result["n"], result["only_a"], result["only_b"]) == (2, 1, 2)
    assert compare_paired({"x": 1.0}, {"y": 1.0})["significant"] is None


def test_unpaired_claims_nothing_without_standard_errors() -> None:
    assert unpaired(0.5, None, 0.7, 0.01)["significant"] is None
    # both at 0 or 1 on every item: stderr 0, and a difference is not evidence by itself
    assert unpaired(0.0, 0.0, 1.0, 0.0)["significant"] is None
    result = unpaired(0.50, 0.02, 0.60, 0.02)
    assert result["significant"] is True
    assert result["p_value"] == pytest.approx(2 * norm.sf(0.1 / math.sqrt(0.02**2 * 2)))  # z = 3.536
