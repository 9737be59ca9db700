"""mifd.study: what is stored of a grid, what is missing, what diverged."""
import pytest

from mifd import evidence, store, study, train
from mifd.config import profile


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    base = profile("smoke", "wm")
    for lam in (0.1, 0.0):
        for seed in (1, 2, 3):
            train.train_wm(base.replace(**{"training.lambda_mi": lam}), seed, root=root, progress=False)
    return root


def test_a_study_splits_stored_from_missing_and_names_one_command(root):
    configs = evidence.study_configs(profile("smoke", "wm"), [0.1, 0.0], c_l1s=[0.0, 0.001])
    assert list(configs) == ["λ = 0.1", "λ = 0", "λ = 0.1, c_L1 = 0.001", "λ = 0, c_L1 = 0.001"]
    assert configs["λ = 0, c_L1 = 0.001"].training.c_l1 == 0.001
    found = study.study(configs, [1, 2, 3, 4], root)
    assert [r.seed for r in found.records["λ = 0.1"]] == [1, 2, 3] and found.records["λ = 0.1, c_L1 = 0.001"] == []
    assert list(found.stored) == ["λ = 0.1", "λ = 0"]
    assert found.command.startswith("mifd sweep wm --profile smoke --seeds 1-4")
    assert "--set training.c_l1=0,0.001" in found.command and "--lambda-mi 0.1 0" in found.command
    assert found.failures == [] and found.report().startswith("6 of 16 runs stored.\nThe others are trained by\nmifd sweep")
    with pytest.raises(study.MissingRunsError, match="mifd sweep wm --profile smoke"):
        found.complete()
    both = study.study({k: configs[k] for k in ("λ = 0.1", "λ = 0")}, [1, 2], root)
    assert both.command == "" and sum(map(len, both.complete().values())) == 4
    runs = study.stored(configs["λ = 0.1"], [1, 2, 4], root)
    assert [r.seed for r in runs] == [1, 2]
    assert study.study({"": configs["λ = 0.1"]}, [1, 2, 4], root).command == (
        "mifd sweep wm --profile smoke --seeds 1-2 4 --lambda-mi 0.1")


def test_a_run_that_diverged_is_reported_neither_stored_nor_missing(tmp_path):
    config = profile("smoke", "wm").replace(**{"training.lambda_mi": 0.1})
    store.record_failure(store.run_dir(config, 4, tmp_path), {
        "reason": "the loss became nan at epoch 3", "epoch": 3})
    found = study.study({"λ = 0.1": config}, [4], tmp_path)
    assert found.records == {"λ = 0.1": []} and found.command == ""
    assert found.failures == ["λ = 0.1, seed 4: the loss became nan at epoch 3"]
    assert "Diverged" in found.report()
    with pytest.raises(study.MissingRunsError, match="diverged: λ = 0.1, seed 4"):
        found.complete()


def test_missing_runs_are_trained_when_asked(tmp_path):
    config = profile("smoke", "wm").replace(**{"training.epochs": 2})
    found = study.study({"control": config}, [5], tmp_path, train_missing=True)
    assert [r.seed for r in found.complete()["control"]] == [5] and found.command == ""
