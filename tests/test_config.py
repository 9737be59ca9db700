import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mifd.config import (
    PROFILES,
    TASKS,
    EstimatorConfig,
    ModelConfig,
    RunConfig,
    TrainingConfig,
    WMTaskConfig,
    deviations,
    profile,
)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", PROFILES)
def test_profiles_round_trip_through_json(name, task):
    config = profile(name, task)
    assert RunConfig.from_json(config.to_json()) == config
    assert RunConfig.from_json(config.to_json()).config_hash() == config.config_hash()


def test_paper_profile_has_spec_values():
    wm = profile("paper", "wm")
    assert (wm.task.pulse_length, wm.task.onset_prob, wm.task.slope) == (40, 1 / 500, 0.1)
    assert (wm.task.n_transient, wm.task.n_learn, wm.task.batch_size) == (1000, 2000, 20)
    assert (wm.training.epochs, wm.training.lambda_mi, wm.training.lr) == (1000, 0.1, 2e-3)
    sep = profile("paper", "separation")
    assert (sep.model.kind, sep.model.n_units, sep.training.lambda_mi) == ("gru", 100, 0.005)
    assert sep.task.seq_len == 10_000


def test_hash_is_stable_across_processes_and_ignores_profile_name():
    config = profile("paper", "wm")
    code = "from mifd.config import profile; print(profile('paper', 'wm').config_hash())"
    env = dict(os.environ, PYTHONHASHSEED="123")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, check=True).stdout.strip()
    assert other == config.config_hash()
    renamed = RunConfig.from_dict({**config.to_dict(), "profile": "renamed"})
    assert renamed.config_hash() == config.config_hash()


def test_hash_changes_with_any_setting():
    config = profile("paper", "wm")
    assert config.replace(**{"training.lambda_mi": 0.0}).config_hash() != config.config_hash()
    assert config.replace(**{"task.pulse_length": 41}).config_hash() != config.config_hash()


def test_the_l1_strength_is_validated_and_enters_the_hash_only_when_set():
    config = profile("book", "wm")
    sparse = config.replace(**{"training.c_l1": 1e-4})
    assert sparse.config_hash() != config.config_hash()
    assert sparse.cohort_key() == config.cohort_key()  # one number per run: same cohort
    with pytest.raises(ValueError, match="c_l1"):
        config.replace(**{"training.c_l1": -1e-4})
    # every stored record, written before c_l1 existed, keeps its directory's hash
    root = Path(__file__).resolve().parent.parent / "results"
    stored = list(root.glob("*/*/seed-*/config.json"))
    assert stored
    for path in stored:
        meta = json.loads(path.read_text())
        assert RunConfig.from_dict(meta["config"]).config_hash() == path.parent.parent.name


def test_replace_marks_profile_custom_and_leaves_original():
    config = profile("book", "wm")
    changed = config.replace(**{"training.epochs": 3})
    assert changed.training.epochs == 3 and config.training.epochs != 3
    assert changed.profile == "book+custom"


def test_smoke_profile_applies_its_listed_deviations():
    smoke = profile("smoke", "wm")
    for dotted, value in deviations("smoke", "wm").items():
        section, name = dotted.split(".")
        assert getattr(getattr(smoke, section), name) == value


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: WMTaskConfig(pulse_length=-1), "pulse_length"),
        (lambda: WMTaskConfig(n_learn=0), "n_learn"),
        (lambda: WMTaskConfig(onset_prob=1.5), "onset_prob"),
        (lambda: WMTaskConfig(onset_prob=-0.1), "onset_prob"),
        (lambda: WMTaskConfig(batch_size=float("nan")), "batch_size"),
        (lambda: ModelConfig(n_units=41), "n_units"),
        (lambda: ModelConfig(kind="lstm"), "kind"),
        (lambda: EstimatorConfig(activation="tanh"), "activation"),
        (lambda: TrainingConfig(lambda_mi=-0.1), "lambda_mi"),
        (lambda: TrainingConfig(rho=2.0), "rho"),
        (lambda: profile("paper", "flipflop"), "task"),
        (lambda: profile("huge", "wm"), "profile"),
        (lambda: RunConfig.from_dict({"task_name": "nope"}), "task_name"),
        (lambda: profile("paper", "wm").replace(**{"training.epochs": -5}), "epochs"),
        (lambda: profile("paper", "wm").replace(**{"training.nonsense": 1}), "nonsense"),
    ],
)
def test_invalid_values_raise_value_error_naming_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_unknown_json_field_is_refused():
    data = json.loads(profile("paper", "wm").to_json())
    data["model"]["extra"] = 1
    with pytest.raises(ValueError, match="extra"):
        RunConfig.from_dict(data)


def test_every_setting_names_its_source():
    from mifd.config import MIFD_ONLY, TASKS, setting_source, settings_table

    for task in TASKS:
        rows = settings_table(task)
        assert len(rows) == sum(len(v) for k, v in profile("paper", task).to_dict().items()
                                if isinstance(v, dict))
        assert all(row["source"] for row in rows)
        assert {r["setting"] for r in rows if r["paper"] != r["book"]} == set(deviations("book", task))
    assert setting_source("wm", "estimator.sample_fraction") == MIFD_ONLY
    assert setting_source("wm", "task.onset_prob").startswith("wm/run_once.py")
    assert setting_source("separation", "model.n_units").startswith("separation/model.py")


def test_a_profile_s_per_run_settings_keep_its_name():
    book = profile("book", "wm")
    control = book.replace(**{"training.lambda_mi": 0.0})
    assert control.profile == "book" and control.config_hash() != book.config_hash()
    assert control.replace(**{"training.c_l1": 1e-3}).profile == "book"
    custom = control.replace(**{"training.epochs": 3})
    assert custom.profile == "book+custom"
    assert custom.replace(**{"training.epochs": book.training.epochs}).profile == "book"
