"""How hard the critic pushes: gradients of the MI term from a fresh critic on a snapshot."""
import numpy as np
import pytest

from mifd import push, train
from mifd.config import profile

SMOKE = profile("smoke", "wm").replace(**{"training.lambda_mi": 0.1, "training.epochs": 2,
                                           "training.snapshot_every": 1})


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    return train.train_wm(SMOKE, 1, root=tmp_path_factory.mktemp("push"), progress=False)


def test_the_mi_term_pushes_and_a_control_would_not(record):
    row = push.measure(record, 2, 0.5, critic_seed=3, steps=4)
    assert row["mi"] > 0 and row["task"] > 0 and np.isfinite(row["critic_mi_last"])
    assert row["mi"] == pytest.approx(np.sqrt(sum(row[k] ** 2 for k in row if k.startswith("mi ")
                                                  and k != "mi_estimate")), rel=1e-5)
    control = record.__class__(**{**record.__dict__, "config": record.config.replace(
        **{"training.lambda_mi": 0.0})})
    assert push.measure(control, 2, 0.5, critic_seed=3, steps=4)["mi"] == 0


def test_measurements_are_stored_once_and_read_back(record, tmp_path):
    first = push.load_or_measure(record, [1, 2], [0.5, 1.0], [3], steps=2, compute_missing=True,
                                 root=tmp_path)
    assert len(first) == 4 and set(first["fraction"]) == {0.5, 1.0}
    again = push.load_or_measure(record, [1, 2], [0.5, 1.0], [3], steps=2, root=tmp_path)
    assert again.drop(columns="seconds").equals(first.drop(columns="seconds"))
    assert push.load_or_measure(record, [1], [0.5], [4], steps=2, root=tmp_path).empty


def test_share_ratios_say_whether_the_share_matters_beyond_the_spread():
    import pandas as pd

    rows = pd.DataFrame({"epoch": [5] * 4 + [9] * 4, "fraction": [0.1, 0.1, 1.0, 1.0] * 2,
                         "mi": [1.0, 1.2, 1.1, 1.3, 1.0, 1.02, 3.0, 3.02]})
    ratios = push.share_ratios(rows).set_index("epoch")
    assert ratios.loc[5, "within spread"] and not ratios.loc[9, "within spread"]
    assert ratios.loc[9, "ratio"] == pytest.approx(3.01 / 1.01)
