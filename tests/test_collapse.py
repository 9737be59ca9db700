"""A fresh critic on a frozen snapshot: the Î of every step, stored and summarised."""
import numpy as np
import pytest

from mifd import collapse, train
from mifd.config import profile

SMOKE = profile("smoke", "wm").replace(**{"training.lambda_mi": 0.1, "training.epochs": 2,
                                           "training.snapshot_every": 1})


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    return train.train_wm(SMOKE, 1, root=tmp_path_factory.mktemp("collapse"), progress=False)


def test_a_frozen_critic_trace_is_stored_once_per_form_and_read_back(record, tmp_path):
    first = collapse.load_or_observe(record, [2], critic_seeds=[3], steps=6, compute_missing=True,
                                     root=tmp_path)
    assert [o["noise_asymmetric"] for o in first] == [True, False]
    assert all(len(o["mi"]) == 6 and np.isfinite(o["mi"]).all() for o in first)
    assert first[0]["mi"] != first[1]["mi"]  # the forms differ in what the marginal term sees
    again = collapse.load_or_observe(record, [2], critic_seeds=[3], steps=6, root=tmp_path)
    assert [o["mi"] for o in again] == [o["mi"] for o in first]
    assert collapse.load_or_observe(record, [1], critic_seeds=[3], steps=6, root=tmp_path) == []
    # the same draws again give the same trace: the observation is regenerable
    assert collapse.observe(record, 2, True, 3, steps=6).tolist() == first[0]["mi"]


def test_summary_counts_collapses_before_and_after_the_pretraining():
    observations = [{"epoch": 750, "noise_asymmetric": True, "critic_seed": 0,
                     "mi": [-7.0, 0.1, -2.0] + [0.5] * 5 + [-3.0]}]
    row = collapse.summary(observations, 1002, pretrain=3).iloc[0]
    assert row["critic"] == "authors'" and row["collapsed, steps 1–3"] == 2
    assert row["collapsed, steps 4–9"] == 1 and row["lowest Î after (nats)"] == -3.0
    assert row["median Î after (nats)"] == 0.5


def test_frozen_text_reads_the_summary_per_critic():
    observations = [{"epoch": 750, "noise_asymmetric": form, "critic_seed": 0,
                     "mi": [-7.0, 0.1, 0.2] + [0.5] * 5 + ([-3.0] if form else [0.4])}
                    for form in (True, False)]
    text = collapse.frozen_text(collapse.summary(observations, 1002, pretrain=3), pretrain=3)
    assert "seed 1002 at epoch 750" in text
    assert ("the authors' critic collapses once during its pre-training (1 × 3 steps) and once "
            "in the 1 × 6 watched steps after it (lowest Î then -3.00 nats)") in text
    assert "the well-posed critic collapses once during its pre-training (1 × 3 steps) and never" in text
    assert "stands still" not in text  # the authors' critic collapsed once after pre-training
    calm = [{**o, "mi": [0.5] * 9} for o in observations]
    assert "stands still" in collapse.frozen_text(collapse.summary(calm, 1002, pretrain=3), pretrain=3)
    assert collapse.frozen_text(collapse.summary([], 1)).startswith("No critic")
