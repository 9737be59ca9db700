"""Differentiation indices on cases with known answers (SPEC §6.3–6.4)."""
import networkx as nx
import numpy as np
import pandas as pd
import pytest

from mifd import analysis, claims


def test_modularity_matches_networkx_on_random_matrices():
    rng = np.random.default_rng(0)
    for n in (4, 10, 40):
        a = analysis.symmetrised_weights(rng.normal(size=(n, n)), negative="abs")
        groups = analysis.two_groups(n)
        graph = nx.from_numpy_array(a)
        communities = [set(np.flatnonzero(groups == g)) for g in (0, 1)]
        expected = nx.community.modularity(graph, communities, weight="weight")
        assert analysis.modularity(a, groups)[0] == pytest.approx(expected, abs=1e-12)


def test_perfectly_modular_matrix_reaches_q_max():
    block = np.kron(np.eye(2), np.ones((3, 3)))
    a = analysis.symmetrised_weights(block)
    q, q_nom = analysis.modularity(a, analysis.two_groups(6))
    assert q == pytest.approx(0.5) and q_nom == pytest.approx(1.0)


def test_uniform_matrix_has_slightly_negative_q():
    a = analysis.symmetrised_weights(np.ones((6, 6)))
    # A_ij = 2 off the diagonal, k_i = 10, 2m = 60: within-group weight 24/60, expected 0.5
    assert analysis.modularity(a, analysis.two_groups(6))[0] == pytest.approx(24 / 60 - 0.5)


def test_negative_entries_refused_unless_magnitudes_are_asked_for():
    with pytest.raises(ValueError, match="negative"):
        analysis.symmetrised_weights(np.array([[0.0, -1.0], [1.0, 0.0]]))
    a = analysis.symmetrised_weights(np.array([[5.0, -1.0], [2.0, 7.0]]), negative="abs")
    assert a.tolist() == [[0.0, 3.0], [3.0, 0.0]]


def test_d_index_two_neurons_by_hand():
    groups = analysis.two_groups(2)
    assert analysis.d_index([1.0, 0.0], [0.0, 1.0], groups) == pytest.approx(1.0)
    assert analysis.d_index([1.0, 1.0], [1.0, 1.0], groups) == pytest.approx(0.0)
    # |(0.6 − 0.2) − (0.1 − 0.3)| / 1.2 = 0.5
    assert analysis.d_index([0.6, 0.1], [0.2, 0.3], groups) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="nonnegative"):
        analysis.d_index([-1.0, 0.0], [0.0, 1.0], groups)


def test_target_correlations_pool_scored_samples_only():
    rng = np.random.default_rng(1)
    y = rng.choice([-1.0, 1.0], size=(3, 50, 2))
    x = np.stack([y[..., 0], -2 * y[..., 1] + 1, rng.normal(size=(3, 50))], axis=-1)
    x[:, :10] = rng.normal(size=(3, 10, 3)) * 100  # a transient that must not count
    c = analysis.target_correlations(x, y, n_transient=10)
    assert c[:2].round(9).tolist() == [[1.0, pytest.approx(0.0, abs=0.3)],
                                      [pytest.approx(0.0, abs=0.3), -1.0]]
    assert analysis.correlation_difference(c)[:2] == pytest.approx(
        [1 - abs(c[0, 1]), abs(c[1, 0]) - 1])
    matrix = analysis.neuron_correlations(x, 10)
    assert np.allclose(matrix, np.corrcoef(x[:, 10:].reshape(-1, 3).T))


def test_indices_of_a_perfectly_specialised_network():
    n = 6
    groups = analysis.two_groups(n)
    rng = np.random.default_rng(2)
    y = rng.choice([-1.0, 1.0], size=(4, 200, 2))
    # G1 copies bit 1, G2 copies bit 2, each unit with its own small noise
    x = y[..., groups] + 0.1 * rng.normal(size=(4, 200, n))
    w_in = np.zeros((4, n))
    w_in[np.ix_([0, 1], groups == 0)] = 1.0
    w_in[np.ix_([2, 3], groups == 1)] = -1.0
    w_out = np.zeros((n, 2))
    w_out[groups == 0, 0] = 0.5
    w_out[groups == 1, 1] = -0.5
    w_rec = np.kron(np.eye(2), np.ones((3, 3)))
    idx = analysis.wm_indices({"w_in": w_in, "w_rec": w_rec, "w_out": w_out}, x, y, 0)
    assert idx["D_in"] == pytest.approx(1.0) and idx["D_out"] == pytest.approx(1.0)
    assert idx["Q_str"] == pytest.approx(0.5) and idx["Q_nom_str"] == pytest.approx(1.0)
    # only the chance correlation between the two random bits keeps these below 1
    assert idx["D_corr"] > 0.9 and idx["Q_nom_corr"] > 0.9


def test_onset_time_is_the_first_epoch_reaching_the_fraction():
    epochs = np.array([0, 25, 50, 75, 100])
    values = np.array([0.0, 0.2, 0.6, 0.5, 1.0])
    assert analysis.onset_time(epochs, values, 0.5) == 50
    assert analysis.onset_time(epochs, values, 0.9) == 100
    assert analysis.onset_time(epochs, values, 0.2) == 25
    assert np.isnan(analysis.onset_time(epochs, -values, 0.5))
    # from the start: 0.4 + 0.5·(0.6 − 0.4) = 0.5 is first reached at epoch 75
    shifted = np.array([0.4, 0.45, 0.42, 0.5, 0.6])
    assert analysis.onset_time(epochs, shifted, 0.5) == 0
    assert analysis.onset_time(epochs, shifted, 0.5, from_start=True) == 75
    assert np.isnan(analysis.onset_time(epochs, shifted[::-1], 0.5, from_start=True))
    with pytest.raises(ValueError, match="fraction"):
        analysis.onset_time(epochs, values, 1.5)


def test_onset_table_and_precedence_lags():
    epochs = np.arange(0, 125, 25)
    rows = []
    for run in range(6):
        fast = np.minimum(1, epochs / (25 + 10 * (run % 2)))  # 50 % reached at epoch 25
        slow = np.minimum(1, epochs / 100)                    # 50 % reached at epoch 50
        rows += [{"run": run, "epoch": e, "Q_corr": f, "Q_str": s}
                 for e, f, s in zip(epochs, fast, slow)]
    courses = pd.DataFrame(rows)
    table = analysis.onset_table(courses, ("Q_corr", "Q_str"))
    assert table["t50 Q_str"].tolist() == [50.0] * 6
    assert table["t90 Q_str"].tolist() == [100.0] * 6
    assert table["t50 Q_corr"].tolist() == [25.0] * 6
    lags = analysis.precedence_lags(courses, "Q_corr", "Q_str")
    assert lags.columns.tolist() == list(analysis.PRECEDENCE_MEASURES)
    assert lags.iloc[:, 0].tolist() == [25.0] * 6 and lags.iloc[:, 1].tolist() == [25.0] * 6


def test_increment_lag_finds_a_known_delay():
    rng = np.random.default_rng(1)
    steps = rng.normal(size=80)
    a = np.cumsum(steps)
    for k in (0, 3, -2):
        b = np.cumsum(np.roll(steps, k))  # b's increments are a's, k evaluations later
        assert analysis.increment_lag(a, b, max_lag=6) == k
    assert np.isnan(analysis.increment_lag(a, np.ones_like(a)))


def test_late_training_check_passes_a_copy_and_fails_a_drift():
    rng = np.random.default_rng(0)
    epochs = np.arange(0, 1001, 25)
    paper = {"mi": 0.9 + 0.05 * rng.normal(size=1000), "accuracy": 0.95 + 0.005 * rng.normal(size=1000),
             "epoch": epochs, "Q_corr": np.full(epochs.size, 0.33)}
    control = {**paper, "mi": 2.3 + 0.05 * rng.normal(size=1000)}
    same = claims.late_training_check(paper, paper, control)
    assert same["ok"].all() and len(same) == 3
    drift = {**paper, "mi": np.r_[paper["mi"][:800], np.full(200, 2.1)],        # Î escapes late
             "accuracy": np.r_[paper["accuracy"][:900], np.full(100, 0.89)],  # accuracy falls
             "Q_corr": np.where(epochs >= 700, 0.05, 0.45)}                   # modularity lost
    assert not claims.late_training_check(drift, paper, control)["ok"].any()


def test_late_q_corr_and_its_windows_read_only_the_late_snapshots():
    epochs = np.arange(0, 1001, 50)
    course = {"epoch": epochs, "Q_corr": np.where(epochs >= 500, 0.2, 0.9)}
    course["Q_corr"][epochs == 1000] = 0.0  # the last window: 0.2 and 0.0
    assert analysis.late_q_corr(course) == pytest.approx((10 * 0.2) / 11)
    windows = analysis.q_corr_windows(course)
    assert windows.tolist() == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.1])


def test_sign_errors_count_wrong_steps_and_the_longest_stretch():
    targets = np.ones((2, 12, 2))
    targets[1, :, 1] = -1
    outputs = np.ones((2, 12, 2))
    outputs[0, 4:7, 0] = -1      # 3 wrong steps of bit 1 in sequence 0
    outputs[1, 9, 0] = -1        # 1 more
    outputs[1, 2:12, 1] = 0.5    # bit 2 of sequence 1 wrong for 10 steps, 8 of them scored
    table = analysis.sign_errors(outputs, targets, n_transient=4)
    assert table["wrong fraction"].tolist() == pytest.approx([4 / 16, 8 / 16])
    assert table["longest wrong stretch (steps)"].tolist() == [3, 8]


def test_modularity_refuses_matrices_it_is_not_defined_for():
    groups = analysis.two_groups(4)
    with pytest.raises(ValueError, match="not symmetric"):
        analysis.modularity(np.triu(np.ones((4, 4))), groups)
    with pytest.raises(ValueError, match="nonnegative"):
        analysis.modularity(-np.ones((4, 4)), groups)
    with pytest.raises(ValueError, match="shape"):
        analysis.modularity(np.ones((4, 3)), groups)


def test_block_sparsity_counts_near_zero_weights_per_block_without_the_diagonal():
    n = 6
    w = np.full((n, n), 0.5)
    w[:3, 3:] = 0.001                     # G1 → G2 all near zero
    w[3, 4] = 0.0                         # one of the six off-diagonal G2 → G2 weights
    np.fill_diagonal(w, 0.0)              # self-connections do not count
    shares = analysis.block_sparsity(w)
    assert shares == {"G1→G1": 0.0, "G1→G2": 1.0, "G2→G1": 0.0, "G2→G2": pytest.approx(1 / 6),
                      "all": pytest.approx(10 / 30)}
    assert analysis.block_sparsity(w, near_zero=0.0001)["G1→G2"] == 0.0


def test_estimates_below_zero_counts_each_span_of_each_run():
    from types import SimpleNamespace
    run = SimpleNamespace(seed=7, history={"mi_before": [1.0, -2.0, 0.5, 0.0, -0.1, -30.0]})
    table = analysis.estimates_below_zero({"λ = 0.1": [run]}, split=4)
    row = table.iloc[0]
    assert (row["condition"], row["seed"]) == ("λ = 0.1", 7)
    assert row["before"] == 0.25 and row["after"] == 1.0  # 0.0 is not below zero
    short = analysis.estimates_below_zero({"c": [run]}, split=10).iloc[0]
    assert short["before"] == 3 / 6 and np.isnan(short["after"])


def test_collapses_count_estimates_below_the_threshold_per_window_and_late():
    mi = np.full(1000, 0.5)
    mi[[10, 600, 601]] = [-2.0, -50.0, float("-inf")]
    found = analysis.collapses(mi)
    assert found["count"] == 3 and found["first"] == 11 and found["minimum"] == float("-inf")
    assert found["late_share"] == pytest.approx(2 / 500)
    assert found["shares"].shape == (10,) and found["shares"][6] == pytest.approx(0.02)
    assert analysis.collapses(np.full(10, -0.5))["count"] == 0  # above −1 nats: not a collapse
    assert np.isnan(analysis.collapses(np.zeros(100))["late_share"])  # no epoch after 500


# --- courses that rise and fall back ---------------------------------------------------------

EPOCHS = np.arange(0, 1001, 25)


def _rise_and_decay(peak_epoch=300, peak=0.4, end=0.05):
    """Up linearly from 0 to `peak` at `peak_epoch`, then down linearly to `end` at 1000."""
    return np.where(EPOCHS <= peak_epoch, peak * EPOCHS / peak_epoch,
                    peak + (end - peak) * (EPOCHS - peak_epoch) / (1000 - peak_epoch))


def test_a_rise_and_decay_is_read_on_its_rising_limb():
    values = _rise_and_decay()
    found = analysis.rise(EPOCHS, values)
    assert found["peak_epoch"] == 300 and found["peak"] == pytest.approx(0.4, abs=0.02)
    assert 150 <= found["onset"] <= 175  # half of the rise to the (smoothed) peak
    assert found["kept"] == pytest.approx(0.16, abs=0.02)  # the last 5 snapshots: 0.075
    # the onset against the final value sees a course that is "grown" from the first step on
    assert analysis.onset_time(EPOCHS, values, 0.5) == 25


def test_a_course_that_stays_up_keeps_its_rise_and_a_flat_one_has_none():
    sustained = np.minimum(EPOCHS / 300, 1.0) * 0.4
    assert analysis.rise(EPOCHS, sustained)["kept"] == pytest.approx(1.0)
    flat = analysis.rise(EPOCHS, np.zeros(EPOCHS.size))
    assert np.isnan(flat["onset"]) and np.isnan(flat["kept"])


def test_one_snapshots_jump_does_not_make_the_peak():
    values = np.minimum(EPOCHS / 500, 1.0) * 0.3
    values[8] = 2.0  # a single outlier at epoch 200
    found = analysis.rise(EPOCHS, values)
    assert found["peak"] == pytest.approx(0.3) and found["peak_epoch"] >= 500


def test_rising_lags_put_structure_after_function_when_it_rises_later():
    rows = []
    for run, shift in (("a", 100), ("b", 200)):
        functional = _rise_and_decay(300)
        structural = np.clip((EPOCHS - shift) / 600, 0, 1) * 0.1
        rows += [{"run": run, "epoch": e, "Q_corr": f, "Q_str": s}
                 for e, f, s in zip(EPOCHS, functional, structural)]
    lags = analysis.rising_lags(pd.DataFrame(rows), "Q_corr", "Q_str")
    # structure: half its rise at shift + 300; function: on its rising limb at 175
    assert list(lags) == [225.0, 325.0]


def test_carriers_count_the_marginal_samples_behind_a_collapse():
    rows = 4000
    one = np.r_[40.0, np.zeros(rows - 1)]            # one exploding score carries the mean
    many = np.r_[np.full(100, 8.0), np.zeros(rows - 100)]  # a hundred alike
    def lme(t):
        return float(np.log(np.mean(np.exp(t))))
    history = {"mi_before": [0.5, 0.2 - lme(one), 0.2 - lme(many)],
               "mi_joint_term": [0.5, 0.2, 0.2], "mi_marginal_term": [0.0, lme(one), lme(many)],
               "marginal_score_max": [0.0, 40.0, 8.0]}
    found = analysis.carriers(history, rows)
    assert list(found["epoch"]) == [2, 3]
    assert found["n_eff"][0] == pytest.approx(1.0, rel=1e-6)
    assert found["n_eff"][1] == pytest.approx(100 + (rows - 100) * np.exp(-8.0), rel=1e-6)
    assert list(found["gap"]) == [pytest.approx(39.8), pytest.approx(7.8)]
    assert list(found["gap_ordinary"]) == [-0.5]
    assert analysis.carriers({"mi_before": [0.1]}, rows) is None


def test_pulse_statistics_of_many_sequences_meet_their_expectations_and_see_a_change():
    import dataclasses

    from mifd import tasks
    from mifd.config import profile

    cfg = profile("paper", "wm").task
    batch = tasks.wm_batch(dataclasses.replace(cfg, batch_size=400), np.random.default_rng(0))
    stats = analysis.pulse_statistics(batch.onsets, batch.inputs, batch.bits, cfg)
    for measured, expected in stats.values():
        assert measured == pytest.approx(expected, rel=0.1)
    doubled = analysis.pulse_statistics(batch.onsets, batch.inputs, batch.bits,
                                        dataclasses.replace(cfg, onset_prob=2 * cfg.onset_prob))
    measured, expected = doubled["onset rate per channel and step"]
    assert measured < 0.6 * expected
