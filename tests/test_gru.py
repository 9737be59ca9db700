"""The fused GRU (`mifd.gru`, `GRUNet`): equal to torch.nn.GRU forward and backward, per run
of a cohort."""
import pytest
import torch
from torch import nn

from mifd.config import ModelConfig
from mifd.gru import GRUIntegration
from mifd.models import GRUNet
from mifd.workspace import Workspace

RUNS, BATCH, STEPS, N_IN, N = 3, 4, 9, 3, 6


def _model(dtype: torch.dtype, runs: int = RUNS) -> GRUNet:
    """A cohort of GRUs with every parameter, biases included, away from its initial value."""
    cfg = ModelConfig(kind="gru", n_units=N, alpha=1.0, noise_std=0.0)
    model = GRUNet(cfg, n_in=N_IN, n_out=2,
                   generators=[torch.Generator().manual_seed(s) for s in range(runs)]).to(dtype)
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=dtype))
    return model


def _torch_gru(model: GRUNet, run: int) -> nn.GRU:
    gru = nn.GRU(N_IN, N, batch_first=True).to(model.weight_hh.dtype)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(gru, f"{name}_l0").copy_(getattr(model, name)[run])
    return gru


def _inputs(dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(RUNS, BATCH, STEPS, N_IN, generator=torch.Generator().manual_seed(5),
                       dtype=dtype)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_forward_equals_torch_gru_for_every_run(dtype, tol):
    model, inputs = _model(dtype), _inputs(dtype)
    h, y = model(inputs)
    assert h.shape == (RUNS, BATCH, STEPS, N) and y.shape == (RUNS, BATCH, STEPS, 2)
    for run in range(RUNS):
        expected, _ = _torch_gru(model, run)(inputs[run])
        assert torch.allclose(h[run], expected, rtol=0, atol=tol)
        readout = expected @ model.weight_out[run].T + model.bias_out[run]
        assert torch.allclose(y[run], readout, rtol=0, atol=tol)


def test_backward_equals_autograd_through_torch_gru_float64():
    model, inputs = _model(torch.float64), _inputs(torch.float64)
    weights = torch.randn(RUNS, BATCH, STEPS, N, generator=torch.Generator().manual_seed(7),
                          dtype=torch.float64)
    h, y = model(inputs)
    ((h * weights).sum() + y.square().sum()).backward()
    for run in range(RUNS):
        gru = _torch_gru(model, run)
        readout = nn.Linear(N, 2).double()
        with torch.no_grad():
            readout.weight.copy_(model.weight_out[run])
            readout.bias.copy_(model.bias_out[run])
        expected, _ = gru(inputs[run])
        ((expected * weights[run]).sum() + readout(expected).square().sum()).backward()
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            assert torch.allclose(getattr(model, name).grad[run],
                                  getattr(gru, f"{name}_l0").grad, rtol=0, atol=1e-12), name
        assert torch.allclose(model.weight_out.grad[run], readout.weight.grad, atol=1e-12)


def test_gru_integration_passes_gradcheck_with_the_initial_state():
    model = _model(torch.float64, runs=2)
    inputs = torch.randn(2, 2, 4, N_IN, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    h0 = torch.randn(2, 2, N, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in
              (model.weight_ih, model.bias_ih, model.weight_hh, model.bias_hh)]
    workspaces = (Workspace(), Workspace())
    assert torch.autograd.gradcheck(lambda h, *p: GRUIntegration.apply(inputs, h, *p, workspaces),
                                    (h0, *params))


def test_a_run_in_a_cohort_equals_the_run_alone():
    model, inputs = _model(torch.float32), _inputs(torch.float32)
    h, _ = model(inputs)
    h.square().sum().backward()
    alone = _model(torch.float32, runs=RUNS)
    with torch.no_grad():  # run 1 only: a cohort of one holding run 1's parameters
        single = GRUNet(ModelConfig(kind="gru", n_units=N, alpha=1.0, noise_std=0.0),
                        n_in=N_IN, n_out=2)
        for p, q in zip(single.parameters(), alone.parameters()):
            p.copy_(q[1:2])
    h1, _ = single(inputs[1:2])
    h1.square().sum().backward()
    assert torch.allclose(h1[0], h[1], rtol=0, atol=1e-6)
    assert torch.allclose(single.weight_hh.grad[0], model.weight_hh.grad[1], rtol=1e-5, atol=1e-6)


def test_reused_buffers_give_the_same_states_and_are_refused_with_gradient():
    model, inputs = _model(torch.float32), _inputs(torch.float32)
    with torch.no_grad():
        fresh = model.hidden(inputs).clone()
        first = model.hidden(inputs, reuse_buffers=True)
        assert torch.equal(first, fresh)
        second = model.hidden(2 * inputs, reuse_buffers=True)
        assert second.data_ptr() == first.data_ptr()  # the same array, overwritten
    with pytest.raises(ValueError, match="without gradient"):
        model.hidden(inputs, reuse_buffers=True)


def test_inputs_take_no_gradient():
    model, inputs = _model(torch.float64), _inputs(torch.float64)
    with pytest.raises(ValueError, match="inputs are data"):
        model(inputs.clone().requires_grad_())
