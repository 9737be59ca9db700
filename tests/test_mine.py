"""Properties of the MINE estimator (SPEC §4), each test failing when its property breaks."""
import dataclasses
import math
from pathlib import Path

import nbformat
import pytest
import torch

from mifd import synthetic
from mifd.config import profile
from mifd.mine import (
    MineEstimator,
    StatisticsNetwork,
    bf16_native,
    check_precision,
    critic_step,
    dv_bound,
    make_critic_optimizer,
)
from mifd.optim import RMSprop

WM = profile("paper", "wm").estimator
SEP = profile("paper", "separation").estimator
CHAPTER = Path(__file__).resolve().parent.parent / "notebooks" / "02_mine.ipynb"


def _chapter_parameters() -> dict:
    """The defaults of the chapter's `parameters` cell (its smoke-scale settings)."""
    notebook = nbformat.read(CHAPTER, as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    values: dict = {}
    exec(cell.source, {}, values)
    return values


def _small(cfg, **changes):
    return dataclasses.replace(cfg, hidden=8, **changes)


def _activity(shape, seed, dtype=torch.float32):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _one_run(shape, seed, dtype=torch.float32):
    """Activity of a cohort of one run: (1, *shape)."""
    return _activity((1, *shape), seed, dtype)


# The bound ----------------------------------------------------------------------------------

def test_dv_bound_equals_hand_computation():
    t_joint = torch.tensor([1.0, 2.0, 3.0])
    t_marginal = torch.tensor([0.0, math.log(2.0)])
    # mean(T_joint) = 2; log mean exp(T_marg) = log((1 + 2) / 2)
    assert dv_bound(t_joint, t_marginal).item() == pytest.approx(2.0 - math.log(1.5), abs=1e-6)


def test_dv_bound_logsumexp_form_matches_naive_form_where_finite():
    t_joint = _activity(50, 0, torch.float64)
    t_marginal = 3 * _activity(70, 1, torch.float64)
    naive = t_joint.mean() - torch.log(torch.exp(t_marginal).mean())
    assert dv_bound(t_joint, t_marginal).item() == pytest.approx(naive.item(), abs=1e-12)


def test_dv_bound_stays_finite_for_scores_of_plus_minus_100():
    t_joint = torch.tensor([100.0, -100.0])
    t_marginal = torch.tensor([100.0, -100.0, 100.0])
    naive = t_joint.mean() - torch.log(torch.exp(t_marginal).mean())
    assert not torch.isfinite(naive)
    expected = 0.0 - (100.0 + math.log(2.0) - math.log(3.0))  # e^-200 vanishes
    assert dv_bound(t_joint, t_marginal).item() == pytest.approx(expected, abs=1e-4)
    assert torch.isfinite(dv_bound(-t_joint, -t_marginal))


# The statistics network -----------------------------------------------------------------------

def test_initialisation_is_glorot_uniform_with_zero_biases_and_seeded():
    net = StatisticsNetwork(20, 20, WM, generators=torch.Generator().manual_seed(0))
    for layer in (net.dense_x, net.dense_y, net.dense_hidden, net.dense_out):
        runs, fan_out, fan_in = layer.weight.shape
        assert runs == 1
        limit = math.sqrt(6 / (fan_in + fan_out))
        assert layer.weight.abs().max() <= limit
        assert torch.count_nonzero(layer.bias) == 0
    hidden = net.dense_hidden.weight
    assert hidden.std().item() == pytest.approx(math.sqrt(6 / 1024) / math.sqrt(3), rel=0.01)
    again = StatisticsNetwork(20, 20, WM, generators=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters()))


def test_architecture_follows_each_task_config():
    wm = StatisticsNetwork(20, 20, WM)
    sep = StatisticsNetwork(50, 50, SEP)
    assert wm.dense_hidden.weight.shape == (1, 512, 512) and wm.dense_out.bias is not None
    assert sep.dense_hidden.weight.shape == (1, 100, 100) and sep.dense_out.bias is None
    z = torch.tensor([-1.0, 2.0])
    assert wm.activation(z).tolist() == [0.0, 2.0]
    assert sep.activation(z).tolist() == [-0.25, 2.0]


def test_critic_optimiser_follows_each_task_config():
    wm = make_critic_optimizer(MineEstimator(2, 2, _small(WM)), WM)
    assert isinstance(wm, RMSprop)
    assert (wm.defaults["lr"], wm.defaults["rho"], wm.defaults["eps"]) == (3e-3, 0.9, 1e-7)
    sep = make_critic_optimizer(MineEstimator(2, 2, _small(SEP)), SEP)
    assert isinstance(sep, torch.optim.Adam)
    assert (sep.defaults["lr"], sep.defaults["eps"]) == (1e-2, 1e-7)
    assert sep.defaults["betas"] == (0.9, 0.999)


# The estimator ---------------------------------------------------------------------------------

CONFIGS = {
    "wm asymmetric noise": _small(WM),
    "wm symmetric noise": _small(WM, noise_asymmetric=False),
    "separation, noise outside": _small(SEP),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_shared_first_layer_equals_naive_computation(name):
    estimator = MineEstimator(3, 4, CONFIGS[name], generators=torch.Generator().manual_seed(1))
    g1 = _one_run((4, 50, 3), 2).requires_grad_()
    g2 = _one_run((4, 50, 4), 3).requires_grad_()
    draw = estimator.draw(g1, g2, torch.Generator().manual_seed(4))
    inputs = [g1, g2, *estimator.parameters()]
    shared, naive = estimator.estimate(draw), estimator.reference(draw)
    assert shared.item() == pytest.approx(naive.item(), rel=1e-5, abs=1e-6)
    for a, b in zip(torch.autograd.grad(shared.sum(), inputs),
                    torch.autograd.grad(naive.sum(), inputs)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", CONFIGS)
def test_gradients_reach_both_groups_and_critic_gradcheck(name):
    estimator = MineEstimator(3, 2, CONFIGS[name], generators=torch.Generator().manual_seed(5))
    estimator = estimator.double()
    names = [n for n, _ in estimator.named_parameters()]

    def mi(g1, g2, *params):
        return torch.func.functional_call(estimator, dict(zip(names, params)),
                                          (g1, g2, torch.Generator().manual_seed(6)))

    g1 = _one_run((2, 6, 3), 7, torch.float64).requires_grad_()
    g2 = _one_run((2, 6, 2), 8, torch.float64).requires_grad_()
    params = [p.detach().clone().requires_grad_() for p in estimator.parameters()]
    assert torch.autograd.gradcheck(mi, (g1, g2, *params))
    grads = torch.autograd.grad(mi(g1, g2, *params).sum(), (g1, g2))
    assert all(g.abs().sum() > 0 for g in grads)


def _by_hand(estimator, g1, g2, seed, marginal_y_noisy):
    """Î from the formula of SPEC §4.2 with the draw replayed from the same seed."""
    draw = estimator.draw(g1, g2, torch.Generator().manual_seed(seed))
    x = draw.x if draw.noise_x is None else draw.x + draw.noise_x
    y = draw.y if draw.noise_y is None else draw.y + draw.noise_y
    y_marginal = torch.gather(y if marginal_y_noisy else draw.y, 1,
                              draw.perm.unsqueeze(-1).expand_as(y))
    return dv_bound(estimator.statistics(x, y), estimator.statistics(x, y_marginal)), draw


@pytest.mark.parametrize("asymmetric", [True, False])
def test_wm_noise_is_added_inside_and_marginal_y_is_noise_free_only_when_asymmetric(asymmetric):
    cfg = _small(WM, noise_asymmetric=asymmetric)
    estimator = MineEstimator(3, 3, cfg, generators=torch.Generator().manual_seed(9))
    g1, g2 = _one_run((5, 400, 3), 10), _one_run((5, 400, 3), 11)
    value = estimator(g1, g2, torch.Generator().manual_seed(12)).item()
    expected, draw = _by_hand(estimator, g1, g2, 12, marginal_y_noisy=not asymmetric)
    other, _ = _by_hand(estimator, g1, g2, 12, marginal_y_noisy=asymmetric)
    assert value == pytest.approx(expected.item(), rel=1e-5)
    assert abs(value - other.item()) > 1e-4
    for noise in (draw.noise_x, draw.noise_y):
        assert noise.std().item() == pytest.approx(WM.noise_std, rel=0.05)


def test_separation_estimator_adds_no_noise():
    estimator = MineEstimator(3, 3, _small(SEP), generators=torch.Generator().manual_seed(13))
    g1, g2 = _one_run((2, 100, 3), 14), _one_run((2, 100, 3), 15)
    draw = estimator.draw(g1, g2, torch.Generator().manual_seed(16))
    assert draw.noise_x is None and draw.noise_y is None
    expected, _ = _by_hand(estimator, g1, g2, 16, marginal_y_noisy=True)
    value = estimator(g1, g2, torch.Generator().manual_seed(16))
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_marginals_are_one_fresh_permutation_of_all_rows_per_call():
    estimator = MineEstimator(2, 2, _small(SEP))
    g1, g2 = _one_run((3, 20, 2), 17), _one_run((3, 20, 2), 18)
    generator = torch.Generator().manual_seed(19)
    first, second = (estimator.draw(g1, g2, generator).perm[0] for _ in range(2))
    assert sorted(first.tolist()) == list(range(60))
    assert not torch.equal(first, second)
    values = [estimator(g1, g2, torch.Generator().manual_seed(19)).item() for _ in range(2)]
    assert values[0] == values[1]


def test_sample_fraction_keeps_that_fraction_of_rows_as_pairs():
    estimator = MineEstimator(2, 2, _small(SEP, sample_fraction=0.25))
    g1 = _one_run((4, 100, 2), 20)
    draw = estimator.draw(g1, 2 * g1, torch.Generator().manual_seed(21))
    assert draw.x.shape == (1, 100, 2) and draw.perm.shape == (1, 100)
    torch.testing.assert_close(draw.y, 2 * draw.x)


# Training ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [_small(WM, clip_norm=1e-3), _small(SEP, clip_value=1e-4)],
                         ids=["clip norm", "clip value"])
def test_critic_step_returns_bound_before_update_and_clips_gradients(cfg):
    estimator = MineEstimator(2, 2, cfg, generators=torch.Generator().manual_seed(22))
    optimizer = make_critic_optimizer(estimator, cfg)
    g1 = _one_run((2, 50, 2), 23)
    g2 = g1 + 0.5 * _one_run((2, 50, 2), 24)
    before = estimator(g1, g2, torch.Generator().manual_seed(25)).item()
    value = critic_step(estimator, optimizer, g1, g2, torch.Generator().manual_seed(25), cfg)
    assert value.tolist() == [before]
    for p in estimator.parameters():
        if cfg.clip_norm is not None:
            assert p.grad.norm() <= cfg.clip_norm * (1 + 1e-5)
        else:
            assert p.grad.abs().max() <= cfg.clip_value


def test_trained_estimate_within_15_percent_on_5d_gaussian_rho_06():
    """The chapter's default critic, sample size and steps on I = −2.5·log(0.64) nats."""
    p = _chapter_parameters()
    critic = dataclasses.replace(WM, hidden=p["hidden"], noise_std=0.0)
    pair = synthetic.GaussianPair(5, 0.6)
    trace = synthetic.train_critic(pair, critic, p["n_samples"], p["steps"], p["seed"])
    estimate = synthetic.final_estimate(trace)
    assert abs(estimate - pair.mutual_information) < 0.15 * pair.mutual_information


def test_independent_groups_estimate_is_within_the_chapter_bound():
    p = _chapter_parameters()
    critic = dataclasses.replace(WM, hidden=p["hidden"], noise_std=0.0)
    pair = synthetic.GaussianPair(p["headline_dim"], 0.0)
    trace = synthetic.train_critic(pair, critic, p["n_samples"], p["steps"], p["seed"])
    assert abs(synthetic.final_estimate(trace)) < p["independence_bound"]


def test_gaussian_mutual_information_closed_forms():
    pair = synthetic.GaussianPair(4, 0.6)
    assert pair.mutual_information == pytest.approx(-2 * math.log(0.64))
    cubed = dataclasses.replace(pair, transform="cube")
    assert cubed.mutual_information == pair.mutual_information
    independent = synthetic.GaussianPair(4, 0.0, scale=0.1)
    # KL(N(0, s² + σ²) ‖ N(0, s²)) per component with σ = s: ½(1 − log 2)
    target = synthetic.asymmetric_noise_target(independent, 0.1)
    assert target == pytest.approx(2 * (1 - math.log(2)))
    assert synthetic.noisy_mutual_information(independent, 0.1) == 0.0


def test_second_forward_before_backward_leaves_first_gradients_intact():
    estimator = MineEstimator(2, 2, _small(WM), generators=torch.Generator().manual_seed(26))
    g1, g2 = _one_run((2, 10, 2), 27), _one_run((2, 10, 2), 28)
    params = list(estimator.parameters())
    fresh = torch.autograd.grad(estimator(g1, g2, torch.Generator().manual_seed(29)).sum(),
                                params)
    first = estimator(g1, g2, torch.Generator().manual_seed(29)).sum()
    estimator(3 * g1, g2 - 1, torch.Generator().manual_seed(30)).sum().backward()
    for a, b in zip(torch.autograd.grad(first, params), fresh):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# Cohorts and precision ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_a_cohort_estimates_and_trains_each_run_as_it_would_alone(name):
    """Three runs' critics as one estimator: the same initial weights, draws, Î and steps
    (per-run clipping included) as three estimators of one run each."""
    cfg = dataclasses.replace(CONFIGS[name], clip_norm=0.05) if name.startswith("wm") \
        else CONFIGS[name]
    seeds = (31, 32, 33)
    cohort = MineEstimator(3, 2, cfg, generators=[torch.Generator().manual_seed(s) for s in seeds])
    alone = [MineEstimator(3, 2, cfg, generators=torch.Generator().manual_seed(s)) for s in seeds]
    g1 = torch.cat([_one_run((4, 30, 3), 40 + r) for r in range(3)])
    g2 = torch.cat([_one_run((4, 30, 2), 50 + r) for r in range(3)]) + 0.5 * g1[..., :2]
    g1[1] *= 100  # one run's gradients far larger than the others': clipping stays per run
    draws = [torch.Generator().manual_seed(60 + r) for r in range(3)]
    opt = make_critic_optimizer(cohort, cfg)
    together = [critic_step(cohort, opt, g1, g2, draws, cfg) for _ in range(3)]
    for r, estimator in enumerate(alone):
        gen, opt_r = torch.Generator().manual_seed(60 + r), make_critic_optimizer(estimator, cfg)
        values = [critic_step(estimator, opt_r, g1[r:r + 1], g2[r:r + 1], gen, cfg)[0]
                  for _ in range(3)]
        assert values == pytest.approx([v[r] for v in together], rel=1e-5, abs=1e-6)
        for (label, p), q in zip(cohort.named_parameters(), estimator.parameters()):
            if label == "statistics.dense_out.bias":
                # T's output bias cancels in the DV bound: its gradient is rounding noise
                # (≈1e-7), which RMSprop scales up to lr-sized steps, so it follows no signal
                continue
            torch.testing.assert_close(p[r], q[0], rtol=1e-5, atol=1e-6, msg=label)


def test_bfloat16_critic_agrees_with_float32_where_native():
    if not bf16_native("cpu"):
        pytest.skip("this CPU has no native bf16 products")
    low = dataclasses.replace(WM, hidden=256, precision="bfloat16")
    full = MineEstimator(10, 10, dataclasses.replace(low, precision="float32"),
                         generators=torch.Generator().manual_seed(70))
    half = MineEstimator(10, 10, low, generators=torch.Generator().manual_seed(70))
    g1 = _one_run((8, 250, 10), 71)
    g2 = (0.8 * g1 + 0.6 * _one_run((8, 250, 10), 72)).requires_grad_()
    values, grads = [], []
    for estimator in (full, half):
        mi = estimator(g1, g2, torch.Generator().manual_seed(73))
        values.append(mi.item())
        grads.append(torch.autograd.grad(mi.sum(), [g2, *estimator.parameters()]))
    assert values[1] == pytest.approx(values[0], rel=0.02, abs=0.01)
    for a, b in zip(*grads):  # within 10 % of the float32 gradient (bf16 keeps 8 bits)
        assert torch.linalg.vector_norm(b - a) <= 0.1 * torch.linalg.vector_norm(a) + 1e-7


def test_bfloat16_is_refused_where_not_native(monkeypatch):
    import mifd.mine as mine

    check_precision(WM, "cpu")  # float32 is always fine
    monkeypatch.setattr(mine, "bf16_native", lambda device: False)
    with pytest.raises(ValueError, match=r"^estimator\.precision: 'bfloat16' needs native"):
        check_precision(dataclasses.replace(WM, precision="bfloat16"), "cpu")


def test_precision_must_be_named():
    with pytest.raises(ValueError, match="EstimatorConfig.precision"):
        dataclasses.replace(WM, precision="float16")
