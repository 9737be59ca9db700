"""The separation GRU, its training loop and analyses (SPEC §2.2, §5.2, §6) on small cases."""
import numpy as np
import pytest
import torch
from helpers import assert_close_records

from mifd import analysis, separation, store
from mifd.config import profile
from mifd.models import GRU_LEGACY_NAMES, GRUNet

SMOKE = profile("smoke", "separation")


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def test_gru_step_matches_spec_equations_by_hand():
    cfg = SMOKE.model.__class__(kind="gru", n_units=4, alpha=1.0, noise_std=0.0)
    model = GRUNet(cfg, n_in=2, n_out=3, generators=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():  # non-zero biases, so every term of the equations is exercised
        for p in (model.bias_ih, model.bias_hh, model.bias_out):
            p.copy_(torch.linspace(-0.5, 0.5, p.numel(), dtype=torch.float64))
    u = np.random.default_rng(1).normal(size=(1, 3, 2))
    h_torch, y_torch = model(torch.from_numpy(u)[None])
    h_torch, y_torch = h_torch[0], y_torch[0]
    w_ih, w_hh = model.weight_ih[0].detach().numpy(), model.weight_hh[0].detach().numpy()
    b_ih, b_hh = model.bias_ih[0].detach().numpy(), model.bias_hh[0].detach().numpy()
    block = lambda m, g: m[g * 4:(g + 1) * 4]  # torch gate order r, z, n
    h = np.zeros(4)
    for t in range(3):
        z = _sigmoid(block(w_ih, 1) @ u[0, t] + block(b_ih, 1) + block(w_hh, 1) @ h + block(b_hh, 1))
        r = _sigmoid(block(w_ih, 0) @ u[0, t] + block(b_ih, 0) + block(w_hh, 0) @ h + block(b_hh, 0))
        cand = np.tanh(block(w_ih, 2) @ u[0, t] + block(b_ih, 2)
                       + r * (block(w_hh, 2) @ h + block(b_hh, 2)))
        h = z * h + (1 - z) * cand
        assert np.allclose(h_torch[0, t].detach().numpy(), h, atol=1e-12)
    w_out, c = model.weight_out[0].detach().numpy(), model.bias_out[0].detach().numpy()
    assert np.allclose(y_torch[0, -1].detach().numpy(), w_out @ h + c, atol=1e-12)
    assert torch.equal(model.recurrent_block("h"), model.weight_hh[0, 8:12])


def test_gru_initialisation_is_keras_like():
    model = GRUNet(profile("paper", "separation").model, generators=torch.Generator().manual_seed(3))
    w_hh = model.weight_hh[0].detach()
    assert torch.allclose(w_hh.T @ w_hh, torch.eye(100), atol=1e-5)  # orthogonal over all gates
    assert model.weight_ih.abs().max() <= np.sqrt(6 / 303)
    assert model.weight_out.abs().max() <= np.sqrt(6 / 106)
    assert all(not b.any() for b in (model.bias_ih, model.bias_hh, model.bias_out))


def test_critic_phase_trains_the_critic_and_leaves_the_gru_alone():
    state = separation.init_separation(SMOKE, 0)
    gru = [p.detach().clone() for p in state.model.parameters()]
    critic = [p.detach().clone() for p in state.estimator.parameters()]
    mi = separation.critic_phase(state, SMOKE, 2)
    assert np.isfinite(mi)
    assert all(torch.equal(a, b) for a, b in zip(gru, state.model.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(critic, state.estimator.parameters()))
    assert all(p.grad is None for p in state.model.parameters())


def test_r_squared_on_known_cases():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, 50, 3))
    assert np.allclose(analysis.r_squared(y, y), 1.0)
    assert np.allclose(analysis.r_squared(y, np.broadcast_to(y.reshape(-1, 3).mean(0), y.shape)), 0.0)
    # predicting half the deviation leaves a quarter of the variance: R² = 0.75
    mean = y.reshape(-1, 3).mean(0)
    assert np.allclose(analysis.r_squared(y, mean + 0.5 * (y - mean)), 0.75)


def test_separation_indices_of_a_perfectly_split_network():
    rng = np.random.default_rng(4)
    n, b, t = 6, 3, 4000
    groups = analysis.two_groups(n)
    # one driving signal per system, shared by its three outputs; G1 units follow the Lorenz
    # signal only, G2 units the Rössler signal only
    lorenz, rossler = rng.normal(size=(b, t, 1)), rng.normal(size=(b, t, 1))
    jitter = lambda: 0.05 * rng.normal(size=(b, t, 3))
    outputs = np.concatenate([lorenz + jitter(), rossler + jitter()], axis=-1)
    h = np.concatenate([lorenz + jitter(), rossler + jitter()], axis=-1)
    w_out = np.zeros((6, n))
    w_out[:3, groups == 0] = 1.0
    w_out[3:, groups == 1] = -2.0
    u_h = np.kron(np.eye(2), np.ones((3, 3)))
    idx = analysis.separation_indices(w_out, u_h, h, outputs, washout=10)
    assert idx["D_out"] == pytest.approx(1.0) and idx["Q_str"] == pytest.approx(0.5)
    assert idx["D_corr"] > 0.9 and idx["Q_corr"] > 0.4
    c_l, c_r = analysis.system_strengths(analysis.output_correlations(h, outputs, 10))
    assert (c_l[groups == 0] > c_r[groups == 0]).all() and (c_r[groups == 1] > c_l[groups == 1]).all()


def test_two_communities_and_nmi_recover_a_block_partition():
    groups = analysis.two_groups(8)
    a = analysis.symmetrised_weights(np.kron(np.eye(2), np.ones((4, 4))) + 0.05)
    labels = analysis.two_communities(a)
    assert analysis.normalized_mutual_information(labels, groups) == pytest.approx(1.0)
    assert analysis.normalized_mutual_information(1 - groups, groups) == pytest.approx(1.0)
    assert analysis.normalized_mutual_information([0, 1, 0, 1], [0, 0, 1, 1]) == pytest.approx(0.0)


def test_smoke_run_logs_every_epoch_and_resumes_identically(tmp_path):
    full = separation.train_separation(SMOKE, 2, root=tmp_path / "full", progress=False)
    assert set(full.history) == set(separation.HISTORY_KEYS)
    assert all(len(v) == SMOKE.training.epochs for v in full.history.values())
    assert all(np.isfinite(v).all() for v in full.history.values())
    assert separation.train_separation(SMOKE, 2, root=tmp_path / "cut", progress=False,
                                       stop_after=1) is None
    resumed = separation.train_separation(SMOKE, 2, root=tmp_path / "cut", progress=False)
    for key, values in full.history.items():
        assert np.array_equal(values, resumed.history[key]), key
    assert resumed.provenance["sittings"] == [0, 1]
    assert store.is_complete(resumed.path)


SEPARATION_COHORT = [(SMOKE.replace(**{"training.lambda_mi": lam}), seed)
                     for seed in (3, 4) for lam in (0.005, 0.0)]


def test_a_separation_cohort_equals_its_runs_trained_alone(tmp_path):
    alone = [separation.train_separation(c, s, root=tmp_path / "alone", progress=False)
             for c, s in SEPARATION_COHORT]
    configs, seeds = zip(*SEPARATION_COHORT)
    together = separation.train_separation_cohort(configs, seeds, root=tmp_path / "cohort",
                                                  progress=False)
    for record, reference in zip(together, alone):
        assert record.provenance["cohort_runs"] == 4
        assert_close_records(record, reference)
    assert not np.allclose(together[0].history["loss"], together[1].history["loss"])  # λ
    assert not np.allclose(together[0].history["loss"], together[2].history["loss"])  # seed


def test_a_diverging_separation_run_fails_alone_and_the_cohort_goes_on(tmp_path):
    configs, seeds = zip(*SEPARATION_COHORT[:2])

    def poison_run_0(state):
        if state.epoch == 1:
            with torch.no_grad():
                state.model.weight_out[0] = float("nan")

    outcomes = separation.train_separation_cohort(configs, seeds, root=tmp_path, progress=False,
                                                  on_epoch=poison_run_0)
    assert isinstance(outcomes[0], str) and "loss became nan at epoch 2" in outcomes[0]
    assert store.is_complete(outcomes[1].path)


def test_r_squared_over_the_scored_steps_leaves_the_washout_out():
    rng = np.random.default_rng(2)
    targets = rng.normal(size=(2, 40, 6))
    outputs = targets.copy()
    outputs[:, :10] = 0.0  # wrong only in the washout
    scored = separation.scores(targets, outputs, washout=10)
    assert scored["r2_mean_scored"] == pytest.approx(1.0) and scored["test_mse"] == 0.0
    assert scored["r2_mean"] < 0.9


def test_chapter_5_trains_missing_smoke_runs_through_papermill(tmp_path):
    from pathlib import Path

    import papermill

    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "05_separation.ipynb"
    papermill.execute_notebook(
        str(notebook), str(tmp_path / "out.ipynb"), cwd=str(notebook.parent),
        kernel_name="python3", progress_bar=False,
        parameters={"profile_name": "smoke", "seeds": [1, 2, 3], "results_dir": str(tmp_path),
                    "train_missing": True, "shown_steps": 300},
    )
    assert len(list(tmp_path.rglob(store.MANIFEST))) == 6


def test_a_checkpoint_of_the_older_gru_layout_is_refused_with_a_clear_error(tmp_path):
    assert separation.train_separation(SMOKE, 5, root=tmp_path, progress=False,
                                       stop_after=1) is None
    path = store.cohort_checkpoint([SMOKE], [5], tmp_path)
    data = torch.load(path, weights_only=True)
    legacy = {new: old for old, new in GRU_LEGACY_NAMES.items()}
    data["model"] = {legacy[k]: v[0] for k, v in data["model"].items()}  # one run, old names
    torch.save(data, path)
    with pytest.raises(store.RecordError, match="does not fit this version"):
        separation.train_separation(SMOKE, 5, root=tmp_path, progress=False)
