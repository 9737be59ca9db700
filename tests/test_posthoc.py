"""The post-hoc MI: a fresh critic with symmetric noise on held-out activity."""
import dataclasses
import json

import numpy as np
import pytest

from mifd import posthoc, synthetic, train
from mifd.config import profile

SMOKE = profile("smoke", "wm")


def test_fresh_critic_estimates_a_known_pair_on_held_out_rows():
    pair = synthetic.GaussianPair(5, 0.6)
    x, y = pair.sample(2 * 1024, synthetic.seeds_of(3)[1])
    g1 = x.numpy().reshape(2, 1024, 5)
    g2 = y.numpy().reshape(2, 1024, 5)
    cfg = dataclasses.replace(SMOKE.estimator, hidden=64, noise_std=0.0, sample_fraction=1.0)
    result = posthoc.fresh_critic_mi(g1, g2, cfg, steps=300, evaluations=5)
    assert result["mi"] == pytest.approx(pair.mutual_information, rel=0.2)
    independent = posthoc.fresh_critic_mi(g1, np.roll(g2, 1, axis=1), cfg, steps=100, evaluations=5)
    assert -0.3 < independent["mi"] < 0.02  # shifting the rows breaks every pair; an overfit
    # critic scores held-out independent pairs slightly below zero (chapter 2)


def test_symmetric_noise_removes_the_asymmetry_offset():
    assert posthoc.symmetric(SMOKE.estimator).noise_asymmetric is False
    assert posthoc.symmetric(SMOKE.estimator).noise_inside is True
    s, sigma = 0.2, 0.1
    expected = 20 / 2 * (sigma**2 / s**2 - np.log1p(sigma**2 / s**2))
    assert posthoc.asymmetry_offset(20, s, sigma) == pytest.approx(expected)
    g = np.random.default_rng(0).normal(0, [0.1, 0.3], size=(50_000, 2))
    assert posthoc.spread(g) == pytest.approx(0.2, rel=0.02)


def test_estimate_is_stored_once_with_provenance(tmp_path):
    record = train.train_wm(SMOKE, 5, root=tmp_path, progress=False)
    assert posthoc.load_or_estimate(record, root=tmp_path) is None  # nothing computed
    result = posthoc.load_or_estimate(record, compute_missing=True, root=tmp_path, steps=5)
    stored = posthoc.path(record, tmp_path)
    assert stored.exists() and json.loads(stored.read_text()) == result
    assert result["settings"]["steps"] == 5 and result["provenance"]["git_commit"]
    assert np.isfinite([result[k] for k in ("mi", "spread_g1", "spread_g2", "asymmetry_offset")]).all()
    half = SMOKE.model.n_units // 2
    g1, g2 = posthoc.group_activity(record)
    assert g1.shape == (2, SMOKE.task.batch_size * SMOKE.task.n_learn, half) == g2.shape
    assert posthoc.load_or_estimate(record, root=tmp_path) == result  # read, not recomputed


def test_separation_activity_is_the_test_set_split_in_halves(tmp_path):
    from mifd import separation

    config = profile("smoke", "separation")
    record = separation.train_separation(config, 2, root=tmp_path, progress=False)
    g1, g2 = posthoc.group_activity(record)
    half = config.model.n_units // 2
    assert g1.shape[0] == 2 and g1.shape[-1] == half == g2.shape[-1]
    result = posthoc.estimate(record, steps=3)
    assert result["task"] == "separation" and np.isfinite(result["mi"])


def test_missing_runs_are_described_in_wrapped_lines():
    text = posthoc.describe_missing([("book", "λ = 0.1", s) for s in range(1002, 1011)]
                                    + [("paper", "λ = 0 (control)", 1001)])
    assert "10 runs" in text and "book λ = 0.1: seeds 1002, 1003" in text.replace("\n", " ")
    assert max(map(len, text.splitlines())) <= 88


def test_versus_control_decides_per_profile_and_estimate():
    import pandas as pd

    held, trained = posthoc.COLUMNS["mi"], posthoc.COLUMNS["mi_training"]
    rows = [{"profile": "book", "condition": c, "seed": s, held: v, trained: t}
            for c, base in (("mi", 0.5), ("ctl", 1.5)) for s, (v, t) in
            enumerate(zip(base + np.arange(4) * 0.1, [3.0, 0.1, 0.2, 0.3] if c == "mi" else [1, 2, 2.5, 2.6]))]
    rows += [{"profile": "paper", "condition": c, "seed": 1, held: v, trained: v}
             for c, v in (("mi", 0.1), ("ctl", 2.0))]
    rows += [{"profile": "solo", "condition": "mi", "seed": 1, held: 0.1, trained: 0.1}]
    table = posthoc.versus_control(pd.DataFrame(rows), "mi", "ctl")
    verdicts = table["verdict"]
    assert list(table.index.get_level_values("profile").unique()) == ["book", "paper"]
    assert verdicts["book"].tolist() == ["no", "yes"]  # in training, one MI run lies above the controls
    assert verdicts["book"].iloc[1] == "yes" and "p = 0.014" in table["numbers"]["book"].iloc[1]
    assert set(verdicts["paper"]) == {"not decidable"}   # 1 vs 1 cannot reach 0.05
    assert posthoc.versus_control(pd.DataFrame(rows[-1:]), "mi", "ctl").empty
