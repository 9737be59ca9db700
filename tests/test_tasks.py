"""Properties of the two tasks (SPEC §3), each test failing when its property breaks."""
import dataclasses

import numpy as np
import pytest
import torch

from mifd import tasks
from mifd.config import SeparationTaskConfig, WMTaskConfig, profile

WM = profile("paper", "wm").task
SEP = profile("paper", "separation").task


@pytest.fixture(scope="module")
def big_batch():
    return tasks.wm_batch(dataclasses.replace(WM, batch_size=100), np.random.default_rng(7))


def test_shapes_and_dtypes(big_batch):
    n = WM.n_transient + WM.n_learn
    assert big_batch.inputs.shape == (100, n, 4) and big_batch.inputs.dtype == np.float32
    assert big_batch.targets.shape == (100, n, 2)
    assert big_batch.onsets.shape == (100, n + 2, 4)
    assert set(np.unique(big_batch.inputs)) <= {0.0, 1.0}


def test_onset_rate_within_binomial_band(big_batch):
    n = big_batch.onsets.size
    p = WM.onset_prob
    half_width = 3.29 * np.sqrt(p * (1 - p) / n)  # 99.9 % normal-approximation band
    assert abs(big_batch.onsets.mean() - p) < half_width


def test_pulse_lasts_pulse_length_steps_from_onset():
    onsets = np.zeros((1, WM.n_transient + WM.n_learn, 4), dtype=bool)
    onsets[0, 100, 1] = True
    pulses = tasks._pulses(torch.from_numpy(onsets), WM.pulse_length).numpy()
    assert np.flatnonzero(pulses[0, :, 1]).tolist() == list(range(100, 140))
    assert pulses[0, :, [0, 2, 3]].sum() == 0


def _reference_bits(onsets: np.ndarray, n: int) -> np.ndarray:
    """Slow, direct reading of the latching rule for one sequence: (n, 2)."""
    bits = np.empty((n, 2), dtype=int)
    for k, (on, off) in enumerate(((0, 1), (2, 3))):
        state = 1 if onsets[0, on] else -1
        for t in range(n):
            if t > 0:
                if onsets[t, on]:
                    state = 1
                elif onsets[t, off]:
                    state = -1
            bits[t, k] = state
    return bits


def test_bit_latches_on_last_pulse_with_on_winning_ties():
    cfg = dataclasses.replace(WM, batch_size=3, onset_prob=0.01)
    batch = tasks.wm_batch(cfg, np.random.default_rng(3))
    batch.onsets[0, 500, :] = True  # a tie on both bits: ON must win
    forced = tasks.WMBatch(batch.inputs, batch.targets,
                           tasks._latched_bits(torch.from_numpy(batch.onsets[:, :3001, (0, 2)]),
                                               torch.from_numpy(batch.onsets[:, :3001, (1, 3)])
                                               ).numpy(), batch.onsets)
    for b in range(3):
        assert np.array_equal(forced.bits[b], _reference_bits(batch.onsets[b], 3001))
    assert (forced.bits[0, 500] == 1).all()


def test_target_equals_last_pulse_type_once_the_ramp_is_over(big_batch):
    ramp_steps = int(round(2 / WM.slope))  # a full swing from -1 to +1
    checked = 0
    for b in range(10):
        y = np.concatenate([[[0.0, 0.0]], big_batch.targets[b]])  # y(t) for t = 0..T
        bits = _reference_bits(big_batch.onsets[b], y.shape[0])
        for k in range(2):
            change = np.r_[0, np.flatnonzero(np.diff(bits[:, k])) + 1]
            since = np.arange(y.shape[0]) - change[np.searchsorted(change, np.arange(y.shape[0]), "right") - 1]
            settled = since >= ramp_steps
            assert np.allclose(y[settled, k], bits[settled, k], atol=1e-6)
            checked += settled.sum()
    assert checked > 10_000


def test_ramp_slope_and_clipping(big_batch):
    y = np.concatenate([np.zeros((100, 1, 2), np.float32), big_batch.targets], axis=1)
    steps = np.diff(y, axis=1)
    assert np.abs(y).max() <= 1.0
    assert np.abs(steps).max() <= WM.slope + 1e-6
    bits = big_batch.bits[:, 1:]
    unclipped = np.abs(y[:, 1:]) < 1.0 - 1e-6
    assert np.allclose(steps[unclipped], WM.slope * bits[unclipped], atol=1e-6)


def test_target_leads_input_by_one_step():
    cfg = dataclasses.replace(WM, batch_size=1, onset_prob=0.0)
    batch = tasks.wm_batch(cfg, np.random.default_rng(0))
    assert batch.targets[0, :, 0].tolist()[:10] == pytest.approx(
        [-0.1 * (k + 1) for k in range(10)])  # y(k+1): the first target is already -0.1
    onsets = np.zeros((1, 3002, 4), dtype=bool)
    onsets[0, 1500, 0] = True
    bits = tasks._latched_bits(torch.from_numpy(onsets[:, :3001, (0, 2)]),
                               torch.from_numpy(onsets[:, :3001, (1, 3)]))
    targets = tasks._ramp(bits, WM.slope)[:, 1:].numpy()
    pulses = tasks._pulses(torch.from_numpy(onsets[:, :3000]), WM.pulse_length).numpy()
    first_input = np.flatnonzero(pulses[0, :, 0])[0]
    first_rise = np.flatnonzero(np.diff(targets[0, :, 0]) > 0)[0] + 1
    assert first_input == 1500 and first_rise == 1499


def test_same_seed_same_batch_different_seed_different():
    a = tasks.wm_batch(WM, np.random.default_rng(11))
    b = tasks.wm_batch(WM, np.random.default_rng(11))
    c = tasks.wm_batch(WM, np.random.default_rng(12))
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.targets, b.targets)
    assert not np.array_equal(a.inputs, c.inputs)


def _ramp_by_loop(bits: np.ndarray, slope: float) -> np.ndarray:
    """SPEC §3.1's ramp written as the plain loop over sequences and steps."""
    trace = np.zeros(bits.shape)
    for t in range(1, bits.shape[1]):
        trace[:, t] = np.clip(trace[:, t - 1] + slope * bits[:, t], -1.0, 1.0)
    return trace


def test_batches_drawn_together_equal_batches_drawn_one_by_one():
    """The critic phase's n batches in one call, and a cohort's runs computed at once, give
    the arrays of n calls of one batch, bit for bit."""
    cfg = WMTaskConfig(n_transient=300, n_learn=600, batch_size=5, onset_prob=1 / 50)
    rng = np.random.default_rng(3)
    one_by_one = [tasks.wm_batch(cfg, rng) for _ in range(4)]
    together = tasks.wm_batch(cfg, np.random.default_rng(3), n_batches=4)
    runs = [np.random.default_rng(s) for s in (3, 4)]
    cohort = tasks.wm_from_onsets(cfg, np.concatenate([tasks.wm_onsets(cfg, r, 4) for r in runs]))
    threaded = tasks.cohort_onsets(cfg, [np.random.default_rng(s) for s in (3, 4)], 4, workers=2)
    assert np.array_equal(threaded, cohort.onsets)
    inputs, targets, bits = tasks.wm_signals(cfg, torch.from_numpy(threaded), targets=False)
    assert torch.equal(inputs, torch.from_numpy(cohort.inputs)) and targets is bits is None
    for name in ("inputs", "targets", "bits", "onsets"):
        expected = np.concatenate([getattr(b, name) for b in one_by_one])
        assert getattr(together, name).dtype == expected.dtype
        assert np.array_equal(getattr(together, name), expected), name
        assert np.array_equal(getattr(cohort, name)[:20], expected), name
    alone = tasks.wm_batch(cfg, np.random.default_rng(4), n_batches=4)
    assert np.array_equal(cohort.targets[20:], alone.targets)
    ramp = _ramp_by_loop(together.bits, cfg.slope)
    assert np.array_equal(together.targets, ramp[:, 1:].astype(np.float32))


def test_each_call_draws_a_fresh_batch():
    rng = np.random.default_rng(5)
    assert not np.array_equal(tasks.wm_batch(WM, rng).inputs, tasks.wm_batch(WM, rng).inputs)


@pytest.mark.parametrize("system, horizon, tolerance", [("lorenz", 5.0, 0.02), ("rossler", 20.0, 1e-3)])
def test_rk45_agrees_with_tight_integration_before_chaos_separates_them(system, horizon, tolerance):
    for index in range(3):
        x0 = tasks.initial_condition(system, 0, index)
        times, coarse = tasks.integrate(system, x0, SEP)
        _, fine = tasks.integrate(system, x0, SEP, rtol=1e-10, atol=1e-12)
        span = fine.max(axis=0) - fine.min(axis=0)
        early = times <= horizon
        assert (np.abs(coarse[early] - fine[early]) / span).max() < tolerance


def test_lorenz_uses_the_stated_loose_tolerance():
    """At rtol 1e-3 the Lorenz solution has left the tight one by t = 20 (chaos amplifies)."""
    x0 = tasks.initial_condition("lorenz", 0, 0)
    times, coarse = tasks.integrate("lorenz", x0, SEP)
    _, fine = tasks.integrate("lorenz", x0, SEP, rtol=1e-10, atol=1e-12)
    late = (times > 20) & (times < 30)
    assert np.abs(coarse[late] - fine[late]).max() > 1.0


def test_sampling_grid_matches_spec():
    times, states = tasks.integrate("rossler", tasks.initial_condition("rossler", 0, 0), SEP)
    assert times.shape == (14_000,) and states.shape == (14_000, 3)
    assert times[0] == 0.0 and times[-1] == 700.0
    assert np.diff(times)[0] == pytest.approx(700 / 13_999)


def test_normalisation_spans_unit_interval_before_discarding():
    _, states = tasks.integrate("lorenz", tasks.initial_condition("lorenz", 0, 1), SEP)
    full = tasks.normalise(states, 0)
    assert np.allclose(full.min(axis=0), 0.0) and np.allclose(full.max(axis=0), 1.0)
    kept = tasks.normalise(states, SEP.n_discard)
    assert kept.shape == (10_000, 3)
    assert np.array_equal(kept, full[SEP.n_discard:])
    assert kept.min() >= 0.0 and kept.max() <= 1.0


def test_separation_batch_mixes_sources_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("MIFD_CACHE", str(tmp_path))
    cfg = dataclasses.replace(SEP, n_samples=1400, n_discard=400)
    batch = tasks.separation_batch([0, 3], cfg)
    assert batch.inputs.shape == (2, 1000, 3) and batch.targets.shape == (2, 1000, 6)
    assert np.allclose(batch.inputs, batch.targets[..., :3] + batch.targets[..., 3:])
    cached = sorted(tmp_path.rglob("*.npy"))
    assert len(cached) == 4 and all(np.load(p).dtype == np.float32 for p in cached)
    again = tasks.separation_batch([0, 3], cfg)
    assert np.array_equal(again.targets, batch.targets)
    other_seed = tasks.separation_batch([0], dataclasses.replace(cfg, data_seed=1))
    assert not np.array_equal(other_seed.targets[0], batch.targets[0])


def test_initial_conditions_are_unit_cube_and_seeded():
    x = tasks.initial_condition("lorenz", 4, 9)
    assert np.array_equal(x, tasks.initial_condition("lorenz", 4, 9))
    assert ((0 <= x) & (x < 1)).all()
    assert not np.array_equal(x, tasks.initial_condition("rossler", 4, 9))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: tasks.integrate("duffing", np.zeros(3), SEP), "system"),
        (lambda: SeparationTaskConfig(n_discard=20_000), "n_discard"),
        (lambda: SeparationTaskConfig(rtol=0.0), "rtol"),
        (lambda: WMTaskConfig(pulse_length=0), "pulse_length"),
    ],
)
def test_bad_parameters_rejected_with_clear_message(make, message):
    with pytest.raises(ValueError, match=message):
        make()
