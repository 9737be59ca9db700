"""Properties of the leaky-integrator RNN (SPEC §2.1); each test fails when its property breaks."""
import math

import pytest
import torch

from mifd.config import ModelConfig
from mifd.models import LeakyIntegration, LeakyRNN, draw_noise, split_groups

CFG = ModelConfig()


def _model(cfg=CFG, seed=0, dtype=torch.float32, **kwargs) -> LeakyRNN:
    """A cohort of one run (every parameter has a leading run axis of length 1)."""
    return LeakyRNN(cfg, generators=[torch.Generator().manual_seed(seed)], **kwargs).to(dtype)


def _one(model: LeakyRNN, name: str) -> torch.Tensor:
    """The single run's parameter `name`, without the run axis."""
    return getattr(model, name)[0]


def _call(model: LeakyRNN, inputs, x0, noise, method="forward"):
    """Call a one-run model on one run's (batch, ...) arrays; returns its arrays without the
    run axis."""
    out = getattr(model, method)(inputs[None], x0[None], noise[None])
    return tuple(o[0] for o in out) if isinstance(out, tuple) else out[0]


def _batch(model: LeakyRNN, batch: int, n_steps: int, seed: int, dtype=torch.float32):
    """Sparse 0/1 pulses, standard-normal noise and x0 from one generator."""
    g = torch.Generator().manual_seed(seed)
    inputs = (torch.rand(batch, n_steps, model.n_in, generator=g) < 0.1).to(dtype)
    x0 = draw_noise(g, (batch, model.n_units), dtype)
    return inputs, x0, draw_noise(g, (batch, n_steps, model.n_units), dtype)


def _set(model: LeakyRNN, **values) -> None:
    with torch.no_grad():
        for name, value in values.items():
            _one(model, name).copy_(torch.as_tensor(value, dtype=getattr(model, name).dtype))


def _autograd_reference(model: LeakyRNN, inputs, x0, noise):
    """The update equation as written, step by step under autograd: (x, z)."""
    a, x, states = model.alpha, x0, []
    w_in, b, w_rec, w_out, b_out = (_one(model, n) for n in ("w_in", "b", "w_rec", "w_out", "b_out"))
    for k in range(inputs.shape[1]):
        x = ((1 - a) * x + a * (inputs[:, k] @ w_in + b + torch.tanh(x) @ w_rec)
             + model.noise_std * noise[:, k])
        states.append(x)
    states = torch.stack(states, 1)
    return states, torch.tanh(states) @ w_out + b_out


def test_shapes_and_default_dtype():
    model = _model()
    inputs, x0, noise = _batch(model, batch=3, n_steps=7, seed=1)
    states, rates, outputs = _call(model, inputs, x0, noise, "forward_with_rates")
    assert states.shape == rates.shape == (3, 7, 40) and outputs.shape == (3, 7, 2)
    assert _call(model, inputs, x0, noise, "run_transient").shape == (3, 40)
    assert states.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert {name: tuple(p.shape) for name, p in model.named_parameters()} == {
        "w_in": (1, 4, 40), "b": (1, 40), "w_rec": (1, 40, 40), "w_out": (1, 40, 2),
        "b_out": (1, 2)}


def test_update_equation_matches_hand_computed_two_steps():
    # 2 units, 1 input; w_rec asymmetric so that w_rec[i, j] = weight from i to j matters.
    model = _model(ModelConfig(n_units=2, alpha=0.25, noise_std=0.1), n_in=1, n_out=1,
                   dtype=torch.float64)
    w_in, b, w_rec = [[0.5, -1.0]], [0.1, 0.2], [[0.0, 2.0], [-0.5, 0.0]]
    w_out, b_out = [[1.0], [3.0]], [0.5]
    _set(model, w_in=w_in, b=b, w_rec=w_rec, w_out=w_out, b_out=b_out)
    u, xi, x = [1.0, 0.0], [[1.0, -2.0], [0.5, 0.0]], [0.3, -0.7]
    expected_x, expected_z = [], []
    for k in range(2):  # scalar arithmetic, one unit j at a time
        r = [math.tanh(v) for v in x]
        x = [0.75 * x[j]
             + 0.25 * (u[k] * w_in[0][j] + b[j] + r[0] * w_rec[0][j] + r[1] * w_rec[1][j])
             + 0.1 * xi[k][j] for j in range(2)]
        expected_x.append(x)
        expected_z.append([math.tanh(x[0]) * w_out[0][0] + math.tanh(x[1]) * w_out[1][0]
                           + b_out[0]])
    states, outputs = _call(model, torch.tensor([[[u[0]], [u[1]]]], dtype=torch.float64),
                            torch.tensor([[0.3, -0.7]], dtype=torch.float64),
                            torch.tensor([xi], dtype=torch.float64))
    f64 = dict(dtype=torch.float64)
    assert torch.allclose(states[0], torch.tensor(expected_x, **f64), rtol=0, atol=1e-14)
    assert torch.allclose(outputs[0], torch.tensor(expected_z, **f64), rtol=0, atol=1e-14)
    # The first step by hand: x1 = 0.75·x0 + 0.25·(u·w_in + b + tanh(x0) @ w_rec) + 0.1·ξ.
    assert states[0, 0, 0].item() == pytest.approx(
        0.225 + 0.25 * (0.5 + 0.1 - 0.5 * math.tanh(-0.7)) + 0.1, abs=1e-14)


def test_noise_is_added_outside_alpha():
    model = _model(ModelConfig(n_units=2, alpha=0.5, noise_std=0.1), n_in=1, dtype=torch.float64)
    _set(model, w_in=[[0.0, 0.0]], b=[0.0, 0.0], w_rec=torch.zeros(2, 2))
    noise = torch.tensor([[[1.0, -2.0], [3.0, 0.0]]], dtype=torch.float64)
    zeros = dict(dtype=torch.float64)
    states, _ = _call(model, torch.zeros(1, 2, 1, **zeros), torch.zeros(1, 2, **zeros), noise)
    # σ·ξ, not α·σ·ξ = half of it; then x2 = (1 − α)·x1 + σ·ξ2.
    assert torch.allclose(states[0, 0], torch.tensor([0.1, -0.2], dtype=torch.float64), atol=1e-15)
    assert torch.allclose(states[0, 1], torch.tensor([0.35, -0.1], dtype=torch.float64), atol=1e-15)


def test_readout_uses_updated_state():
    model = _model(dtype=torch.float64)
    inputs, x0, noise = _batch(model, batch=2, n_steps=1, seed=2, dtype=torch.float64)
    inputs[:, 0] = torch.tensor([1.0, 0.0, 1.0, 0.0])
    states, outputs = _call(model, inputs, x0, noise)
    w_out, b_out = _one(model, "w_out"), _one(model, "b_out")
    read_from_updated = torch.tanh(states[:, 0]) @ w_out + b_out
    assert torch.allclose(outputs[:, 0], read_from_updated, atol=1e-14)
    assert not torch.allclose(outputs[:, 0], torch.tanh(x0) @ w_out + b_out, atol=1e-3)
    # so z[0] already depends on u[0]
    _, outputs_without_input = _call(model, torch.zeros_like(inputs), x0, noise)
    assert (outputs - outputs_without_input).abs().max() > 1e-3


def test_initialisation_statistics():
    model = _model(seed=3)
    assert math.sqrt(6 / 44) == pytest.approx(0.3693, abs=1e-4)  # the limits SPEC §2.1 states
    assert math.sqrt(6 / 42) == pytest.approx(0.3780, abs=1e-4)
    assert model.w_in.abs().max() <= math.sqrt(6 / 44)
    assert model.w_out.abs().max() <= math.sqrt(6 / 42)
    assert torch.all(model.b == 0) and torch.all(model.b_out == 0)
    # Statistics on a wide network, where they are tight: 400 units, 160 000 recurrent weights.
    wide = _model(ModelConfig(n_units=400, gain=1.5), seed=4, n_in=40, n_out=40)
    assert wide.w_rec.std().item() == pytest.approx(1.5 / math.sqrt(400), rel=0.01)
    assert abs(wide.w_rec.mean().item()) < 4 * 1.5 / 400 / math.sqrt(400)
    limit = math.sqrt(6 / 440)  # Glorot on (40, 400) and on (400, 40)
    for weight in (wide.w_in, wide.w_out):
        assert weight.abs().max() <= limit and weight.abs().max() > 0.99 * limit
        assert weight.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.02)  # uniform: l/√3


def test_same_generator_seed_gives_identical_parameters():
    first, second, other = _model(seed=5), _model(seed=5), _model(seed=6)
    for (name, p), q, r in zip(first.named_parameters(), second.parameters(), other.parameters()):
        assert torch.equal(p, q), name
        if name.startswith("w_"):
            assert not torch.equal(p, r), name


def test_groups_are_contiguous_halves():
    model = _model()
    assert model.groups == (slice(0, 20), slice(20, 40))
    g1, g2 = split_groups(torch.arange(40.0).expand(3, 5, 40))
    assert g1[0, 0].tolist() == list(range(20)) and g2[0, 0].tolist() == list(range(20, 40))


def _loss(states, rates, outputs, targets):
    """Task MSE plus a nonlinear stand-in for the MI term on both groups' rates."""
    g1, g2 = split_groups(rates)
    mi_stand_in = (torch.sin(g1).sum(-1) * g2.square().mean(-1)).mean()
    return (outputs - targets).square().mean() + mi_stand_in


@pytest.mark.parametrize("rates_from", ["tanh of the states", "the model's rates output"])
def test_hand_written_backward_matches_autograd_float64(rates_from):
    model = _model(seed=7, dtype=torch.float64)
    inputs, x0, noise = _batch(model, batch=3, n_steps=60, seed=8, dtype=torch.float64)
    x0.requires_grad_()
    g = torch.Generator().manual_seed(9)
    targets = torch.sign(torch.randn(3, 60, 2, generator=g, dtype=torch.float64))
    wrt = [model.w_rec, model.w_in, model.b, model.w_out, model.b_out, x0]
    # the reference reads the one run's slices; the hand-written path its run axis

    states, outputs = _autograd_reference(model, inputs, x0, noise)
    expected = torch.autograd.grad(_loss(states, torch.tanh(states), outputs, targets), wrt)

    states, rates, outputs = _call(model, inputs, x0, noise, "forward_with_rates")
    if rates_from == "tanh of the states":
        rates = torch.tanh(states)
    got = torch.autograd.grad(_loss(states, rates, outputs, targets), wrt)
    for name, e, g in zip(["w_rec", "w_in", "b", "w_out", "b_out", "x0"], expected, got):
        assert e.abs().max() > 1e-3, name  # the loss reaches every argument
        assert torch.allclose(g, e, rtol=0, atol=1e-10), (name, (g - e).abs().max().item())


def test_leaky_integration_passes_gradcheck():
    g = torch.Generator().manual_seed(10)

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()

    inputs = (torch.rand(2, 3, 5, 2, generator=g, dtype=torch.float64) < 0.5).double()
    noise = torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64)
    args = [rand(2, 3, 4), rand(2, 2, 4), rand(2, 4), rand(2, 4, 4, scale=0.5)]  # x0, w_in, b, w_rec
    assert torch.autograd.gradcheck(
        lambda *a: LeakyIntegration.apply(inputs, noise, *a, 0.3, 0.2), args)


def test_run_transient_equals_last_state_of_forward():
    model = _model(seed=11)
    inputs, x0, noise = _batch(model, batch=4, n_steps=300, seed=12)
    states, _ = _call(model, inputs, x0, noise)
    assert torch.equal(_call(model, inputs, x0, noise, "run_transient"), states[:, -1])


def test_reused_buffers_give_the_same_states_and_are_refused_with_gradient():
    model = _model(seed=13)
    inputs, x0, noise = _batch(model, batch=4, n_steps=50, seed=14)
    states, _ = _call(model, inputs, x0, noise)
    with torch.no_grad():
        reused, _ = model.run(inputs[None], x0[None], noise[None], reuse_buffers=True)
        assert torch.equal(reused[0], states)
    with pytest.raises(ValueError, match="without gradient"):
        model.run(inputs[None], x0[None], noise[None], reuse_buffers=True)


def test_a_cohort_computes_each_run_as_it_would_alone_forward_and_backward():
    """Three runs with their own parameters, inputs and noise, as one cohort (float64)."""
    seeds = (21, 22, 23)
    cohort = LeakyRNN(CFG, generators=[torch.Generator().manual_seed(s) for s in seeds]).double()
    alone = [_model(seed=s, dtype=torch.float64) for s in seeds]
    for r, model in enumerate(alone):
        for name, p in model.named_parameters():
            assert torch.equal(p[0], getattr(cohort, name)[r]), (name, r)  # same initial draws
    batches = [_batch(model, batch=3, n_steps=40, seed=30 + r, dtype=torch.float64)
               for r, model in enumerate(alone)]
    inputs, x0, noise = (torch.stack(parts) for parts in zip(*batches))
    states, rates, outputs = cohort.forward_with_rates(inputs, x0, noise)
    (outputs.square().sum() + rates[..., :20].sum()).backward()
    for r, model in enumerate(alone):
        s, q, z = _call(model, *batches[r], method="forward_with_rates")
        (z.square().sum() + q[..., :20].sum()).backward()
        assert torch.allclose(states[r], s, rtol=0, atol=1e-12)
        assert torch.allclose(outputs[r], z, rtol=0, atol=1e-12)
        for name, p in model.named_parameters():
            assert torch.allclose(getattr(cohort, name).grad[r], p.grad[0], rtol=0, atol=1e-10), name


def test_wrong_model_kind_is_refused():
    with pytest.raises(ValueError, match="leaky_rnn"):
        LeakyRNN(ModelConfig(kind="gru"))
