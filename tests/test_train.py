"""The alternating working-memory training (SPEC §5.1) at the smoke profile."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import DEVICE, assert_close_records

from mifd import analysis, evaluate, mine, runs, store, train
from mifd.cli import main
from mifd.config import profile

SMOKE = profile("smoke", "wm")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train.train_wm(SMOKE, 5, root=tmp_path_factory.mktemp("full"), progress=False,
                          device=DEVICE)


def test_history_has_one_entry_per_epoch_and_snapshots_at_stride(uninterrupted):
    epochs = SMOKE.training.epochs
    assert set(uninterrupted.history) == set(train.HISTORY_KEYS)
    assert all(len(v) == epochs for v in uninterrupted.history.values())
    expected = list(range(0, epochs + 1, SMOKE.training.snapshot_every))
    assert uninterrupted.snapshot_epochs.tolist() == expected
    assert uninterrupted.snapshots["w_rec"].shape == (len(expected), 40, 40)
    assert all(np.isfinite(v).all() for v in uninterrupted.history.values())


def test_same_seed_gives_identical_history(uninterrupted, tmp_path):
    again = train.train_wm(SMOKE, 5, root=tmp_path, progress=False)
    for key in train.HISTORY_KEYS:
        assert np.array_equal(again.history[key], uninterrupted.history[key]), key
    other = train.train_wm(SMOKE, 6, root=tmp_path, progress=False)
    assert not np.array_equal(other.history["mse"], uninterrupted.history["mse"])


class _Killed(Exception):
    pass


def test_killed_run_resumes_to_the_uninterrupted_history_on_the_test_device(uninterrupted,
                                                                           tmp_path):
    def kill_at_3(state):
        if state.epoch == 3:  # between two checkpoints (snapshot_every = 2)
            raise _Killed

    with pytest.raises(_Killed):
        train.train_wm(SMOKE, 5, root=tmp_path, progress=False, on_epoch=kill_at_3,
                       device=DEVICE)
    directory = store.run_dir(SMOKE, 5, tmp_path)
    checkpoint = store.cohort_checkpoint([SMOKE], [5], tmp_path)
    assert not store.is_complete(directory) and checkpoint.exists()
    resumed = train.train_wm(SMOKE, 5, root=tmp_path, progress=False, device=DEVICE)
    for key in train.HISTORY_KEYS:
        assert np.array_equal(resumed.history[key], uninterrupted.history[key]), key
    for name, values in uninterrupted.snapshots.items():
        assert np.array_equal(resumed.snapshots[name], values), name
    assert not checkpoint.exists() and not checkpoint.parent.exists()


def test_stop_after_leaves_checkpoint_and_resume_completes_on_the_test_device(uninterrupted,
                                                                             tmp_path):
    assert train.train_wm(SMOKE, 5, root=tmp_path, progress=False, stop_after=1,
                          device=DEVICE) is None
    resumed = train.train_wm(SMOKE, 5, root=tmp_path, progress=False, device=DEVICE)
    assert np.array_equal(resumed.history["loss"], uninterrupted.history["loss"])


def test_a_checkpoint_without_cpu_time_resumes_to_a_record_without_it(uninterrupted, tmp_path):
    """A checkpoint written before runs counted their CPU time resumes as before; the record
    then has no train_cpu_seconds (costs falls back to wall time × threads) rather than a
    count of the last sitting only."""
    assert train.train_wm(SMOKE, 5, root=tmp_path, progress=False, stop_after=1) is None
    path = store.cohort_checkpoint([SMOKE], [5], tmp_path)
    data = torch.load(path, weights_only=True)
    for member in data["members"]:
        del member["cpu_seconds"]
    torch.save(data, path)
    resumed = train.train_wm(SMOKE, 5, root=tmp_path, progress=False)
    assert np.array_equal(resumed.history["loss"], uninterrupted.history["loss"])
    assert "train_cpu_seconds" not in resumed.provenance
    assert uninterrupted.provenance["train_cpu_seconds"] > 0


def test_checkpoint_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"epoch": 1, "payload": _Killed()}, path)
    with pytest.raises(store.RecordError, match=r"(?i)evil\.pt: not a loadable.*weights"):
        runs.read_checkpoint(path)


def _model_step_after_scrambling_critic(lambda_mi):
    config = SMOKE.replace(**{"training.lambda_mi": lambda_mi})
    params = []
    for scramble in (False, True):
        state = train.init_wm(config, 3)
        if scramble:
            with torch.no_grad():
                for p in state.estimator.parameters():
                    p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(9)))
        train.model_phase_step(state)
        params.append([p.detach().clone() for p in state.model.parameters()])
    return params


def test_control_lambda_zero_gradient_is_free_of_the_critic():
    plain, scrambled = _model_step_after_scrambling_critic(0.0)
    assert all(torch.equal(a, b) for a, b in zip(plain, scrambled))


def test_mi_penalty_reaches_the_model_when_lambda_positive():
    plain, scrambled = _model_step_after_scrambling_critic(0.1)
    assert not all(torch.equal(a, b) for a, b in zip(plain, scrambled))


def test_the_l1_penalty_pulls_each_run_by_its_own_strength():
    configs = [SMOKE.replace(**{"training.c_l1": c}) for c in (0.01, 0.0)]
    state = train.init_wm(configs, [3, 3])
    w_rec = state.model.w_rec
    runs.l1_penalty(state, w_rec).sum().backward()
    assert torch.equal(w_rec.grad[0], 0.01 * torch.sign(w_rec.detach()[0]))
    assert not w_rec.grad[1].any()
    before = 0.01 * w_rec.detach()[0].abs().sum().item()
    logged = train.model_phase_step(state)  # logs the values before its update
    assert logged[0]["l1"] == pytest.approx(before, rel=1e-5)
    assert logged[1]["l1"] == 0.0


def test_a_strong_l1_penalty_makes_the_recurrent_weights_sparser():
    norms = []
    for c_l1 in (0.0, 0.05):
        state = train.init_wm(SMOKE.replace(**{"training.c_l1": c_l1}), 3)
        for _ in range(5):
            train.model_phase_step(state)
        norms.append(state.model.w_rec.detach().abs().sum().item())
    assert norms[1] < 0.97 * norms[0]


def test_accuracy_follows_spec_rounding():
    y = torch.tensor([[[1.0, -1.0], [0.0, 0.2], [-0.3, -0.5]]])
    z = torch.tensor([[[0.5, -0.1], [-0.2, 0.3], [-0.1, -0.5]]])
    # labels round((y+1)/2) half-to-even: [[1,0],[0,1],[0,0]]; predictions z>0: [[1,0],[0,1],[0,0]]
    assert train.accuracy(z, y).tolist() == [1.0, 1.0]
    assert train.accuracy(-z, y).tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "wm", "--seed", "-1"], "--seed"),
        (["train", "wm", "--seed", "x"], "--seed"),
        (["train", "wm", "--seed", "1", "--profile", "huge"], "--profile"),
        (["train", "wm", "--seed", "1", "--lambda-mi", "-0.5"], "lambda_mi"),
        (["train", "wm", "--seed", "1", "--epochs", "0"], "--epochs"),
        (["train", "wm", "--seed", "1", "--set", "estimator.precision=float16"], "precision"),
        (["train", "wm", "--seed", "1", "--set", "training.nothing=1"], "nothing"),
        (["train", "wm", "--seed", "1", "--set", "training.epochs=3,4"], "one value"),
        (["train", "flipflop", "--seed", "1"], "task"),
        (["book", "--chapter", "99_nothing"], "99_nothing"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_cli_rejects_bad_arguments_with_one_line_and_code_2(argv, needle, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        code = main([*argv, *(["--results", str(tmp_path)] if argv[0] == "train" else [])])
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not any(tmp_path.rglob("*.json"))


def test_cli_refuses_bfloat16_where_not_native(monkeypatch, capsys, tmp_path):
    import mifd.mine

    monkeypatch.setattr(mifd.mine, "bf16_native", lambda device: False)
    for command in (["train", "wm", "--seed", "1"], ["sweep", "wm", "--seeds", "1"]):
        code = main([*command, "--profile", "smoke", "--set", "estimator.precision=bfloat16",
                     "--results", str(tmp_path)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "estimator.precision" in err
    assert not any(tmp_path.iterdir())


def test_cli_train_stores_a_record(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mifd", "train", "wm", "--profile", "smoke", "--seed", "2",
         "--epochs", "2", "--set", "training.lr=0.001", "--results", str(tmp_path), "--quiet"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "stored" in result.stdout
    manifest, = tmp_path.rglob(store.MANIFEST)
    assert store.load_record(manifest.parent).config.training.lr == 0.001


def test_batched_critic_forward_equals_separate_forwards():
    state = train.init_wm(SMOKE, 4)
    with torch.no_grad():
        x, _, _ = train._segment(state, x0_normal=True, grad=False, n_batches=3)
    task = SMOKE.task
    replay = train.init_wm(SMOKE, 4).members[0]
    from mifd.tasks import wm_batch

    batches = [wm_batch(task, replay.rng) for _ in range(3)]
    b = task.batch_size
    x0 = torch.randn((3 * b, 40), generator=replay.generator)
    noise = torch.randn((3 * b, task.n_transient + task.n_learn, 40), generator=replay.generator)
    for i, batch in enumerate(batches):
        rows = slice(i * b, (i + 1) * b)
        inputs = torch.from_numpy(batch.inputs)[None]
        with torch.no_grad():
            start = state.model.run_transient(inputs[:, :, :task.n_transient], x0[None, rows],
                                              noise[None, rows, :task.n_transient])
            alone, _ = state.model(inputs[:, :, task.n_transient:], start,
                                   noise[None, rows, task.n_transient:])
        torch.testing.assert_close(x[0, rows], alone[0], rtol=1e-6, atol=1e-6)


# --- cohorts --------------------------------------------------------------------------------

EVERY_EPOCH = SMOKE.replace(**{"training.snapshot_every": 1})
COHORT = [(EVERY_EPOCH.replace(**{"training.lambda_mi": lam}), seed)
          for seed in (7, 8) for lam in (0.1, 0.0)]


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    root = tmp_path_factory.mktemp("alone")
    return [train.train_wm(config, seed, root=root, progress=False, device=DEVICE)
            for config, seed in COHORT]


def test_a_cohort_of_four_equals_the_four_runs_trained_alone_on_the_test_device(alone, tmp_path):
    configs, seeds = zip(*COHORT)
    together = train.train_wm_cohort(configs, seeds, root=tmp_path, progress=False,
                                     device=DEVICE)
    for record, reference in zip(together, alone):
        assert record.provenance["cohort_runs"] == 4
        assert_close_records(record, reference)
    # and their numbers differ from each other: λ and the seed matter
    assert not np.allclose(together[0].history["loss"], together[1].history["loss"])
    assert not np.allclose(together[0].history["loss"], together[2].history["loss"])


def test_a_diverging_run_fails_alone_and_the_cohort_goes_on_on_the_test_device(alone, tmp_path):
    configs, seeds = zip(*COHORT)

    def poison_run_1(state):
        if state.epoch == 2:
            with torch.no_grad():
                state.model.w_rec[1] = float("nan")

    outcomes = train.train_wm_cohort(configs, seeds, root=tmp_path, progress=False,
                                     on_epoch=poison_run_1, device=DEVICE)
    failed = outcomes[1]
    assert isinstance(failed, str) and "loss became nan at epoch 3" in failed
    directory = store.run_dir(configs[1], seeds[1], tmp_path)
    assert store.read_failure(directory)["epoch"] == 3 and not store.is_complete(directory)
    for i in (0, 2, 3):
        assert_close_records(outcomes[i], alone[i])
    assert not store.cohort_checkpoint(configs, seeds, tmp_path).exists()


def test_runs_of_different_settings_are_refused_as_a_cohort():
    with pytest.raises(ValueError, match="share every setting"):
        train.train_wm_cohort([SMOKE, SMOKE.replace(**{"training.lr": 1e-3})], [1, 2])
    with pytest.raises(ValueError, match="same run twice"):
        train.train_wm_cohort([SMOKE, SMOKE], [1, 1])


def test_chapter_3_trains_missing_smoke_runs_through_papermill(tmp_path):
    from pathlib import Path

    import papermill

    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "03_training.ipynb"
    papermill.execute_notebook(
        str(notebook), str(tmp_path / "out.ipynb"), cwd=str(notebook.parent),
        kernel_name="python3", progress_bar=False,
        parameters={"profile_name": "smoke", "seeds": [1, 2], "eps_seeds": [2, 3],
                    "bf16_seeds": [1], "comparison_epochs": None,
                    "results_dir": str(tmp_path), "train_missing": True},
    )
    # (comparison_epochs None: the ε and bf16 comparisons reuse the chapter's own runs)
    # both conditions of seeds 1 and 2, seed 2 again with ε outside the root (seed 3 is not
    # among the chapter's seeds, so it is not compared), and seed 1 with a bfloat16 critic
    # where this CPU has native bf16
    expected = 5 + mine.bf16_native("cpu")
    assert len(list(tmp_path.rglob(store.MANIFEST))) == expected


def test_index_courses_are_computed_once_per_record_arguments_and_code(uninterrupted, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("MIFD_CACHE", str(tmp_path))
    computed = evaluate.index_courses(uninterrupted, 3)
    path = evaluate.courses_path(uninterrupted, 3, None, False)
    assert path.exists() and path.is_relative_to(tmp_path)

    def replay_refused(*args, **kwargs):
        raise AssertionError("replayed although the courses are kept")

    monkeypatch.setattr(evaluate, "replay_wm", replay_refused)
    pd.testing.assert_frame_equal(evaluate.index_courses(uninterrupted, 3), computed)
    for other in (evaluate.courses_path(uninterrupted, 4, None, False),
                  evaluate.courses_path(uninterrupted, 3, None, True)):
        assert other != path and not other.exists()
    monkeypatch.setattr(evaluate, "code_version", lambda: "another version")
    assert evaluate.courses_path(uninterrupted, 3, None, False) != path


def test_legacy_bias_restore_runs_every_snapshot_with_the_final_biases(uninterrupted):
    current = evaluate.index_courses(uninterrupted, 0)
    legacy = evaluate.index_courses(uninterrupted, 0, legacy_bias_restore=True)
    pd.testing.assert_frame_equal(current.iloc[[-1]], legacy.iloc[[-1]])
    assert not np.isclose(current["Q_corr"].iloc[0], legacy["Q_corr"].iloc[0])
    weight_only = ["Q_str", "D_in", "D_out"]
    pd.testing.assert_frame_equal(current[weight_only], legacy[weight_only])
    first = {name: values[0] for name, values in uninterrupted.snapshots.items()}
    first.update({name: uninterrupted.snapshots[name][-1] for name in ("b", "b_out")})
    by_hand = evaluate.replay_wm(uninterrupted.config, first, 0)
    assert np.isclose(legacy["Q_corr"].iloc[0], analysis.wm_indices(
        first, by_hand.x, by_hand.targets, uninterrupted.config.task.n_transient)["Q_corr"])


def test_the_bound_s_terms_are_logged_and_their_difference_is_the_estimate(alone):
    for record in alone:
        h = record.history
        np.testing.assert_allclose(h["mi_joint_term"] - h["mi_marginal_term"], h["mi_before"],
                                   rtol=1e-5, atol=1e-5)
        # the largest marginal score bounds the log-mean-exp from above
        assert (h["marginal_score_max"] >= h["mi_marginal_term"] - 1e-6).all()


def test_a_record_names_its_cohort_in_run_axis_order(tmp_path):
    configs, seeds = zip(*COHORT)
    records = train.train_wm_cohort(configs, seeds, root=tmp_path, progress=False,
                                    device=DEVICE)
    statement = records[2].provenance["cohort"]
    assert [(m["config_hash"], m["seed"]) for m in statement["members"]] == [
        (c.config_hash(), s) for c, s in COHORT]
    assert statement["id"] == store.cohort_checkpoint(configs, seeds, tmp_path).parent.name
    alone_record = train.train_wm(*COHORT[0], root=tmp_path / "alone", progress=False,
                                  device=DEVICE)
    assert [m["seed"] for m in alone_record.provenance["cohort"]["members"]] == [7]


def test_set_takes_true_and_false_as_json_spells_them(tmp_path):
    code = main(["train", "wm", "--profile", "smoke", "--seed", "3", "--epochs", "1", "--quiet",
                 "--set", "estimator.noise_asymmetric=false", "--results", str(tmp_path)])
    assert code == 0
    record = store.load_record(next(tmp_path.glob("wm/*/seed-3")))
    assert record.config.estimator.noise_asymmetric is False


def test_a_control_trains_the_same_network_with_either_noise_form(tmp_path):
    """With λ = 0 the critic never reaches the RNN and both noise forms draw the same random
    numbers, so a control's network (and every task number) is the same bit for bit; only the
    critic's estimate differs."""
    control = SMOKE.replace(**{"training.lambda_mi": 0.0, "training.epochs": 3})
    symmetric = control.replace(**{"estimator.noise_asymmetric": False})
    a = train.train_wm(control, 5, root=tmp_path / "a", progress=False)
    b = train.train_wm(symmetric, 5, root=tmp_path / "b", progress=False)
    for key in ("mse", "accuracy", "loss", "grad_norm", "l2"):
        np.testing.assert_array_equal(a.history[key], b.history[key])
    for name in a.snapshots:
        np.testing.assert_array_equal(a.snapshots[name], b.snapshots[name])
    assert not np.array_equal(a.history["mi_before"], b.history["mi_before"])


def test_the_cache_key_reads_the_code_that_computes_the_indices_and_no_other(tmp_path):
    package = Path(evaluate.__file__).parent
    assert evaluate.package_imports(package / "evaluate.py") >= {"analysis", "models", "tasks"}
    module = tmp_path / "a.py"
    for name in ("b", "c", "d"):
        (tmp_path / f"{name}.py").write_text("")
    module.write_text("from . import b, c as cc\nfrom .d import x\nfrom .missing import y\nimport e\n")
    assert evaluate.package_imports(module) == {"b", "c", "d"}
    reached, todo = set(), ["evaluate"]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(evaluate.package_imports(package / f"{name}.py"))
    assert {"claims", "evidence", "figures", "sweep", "cli"}.isdisjoint(reached)
