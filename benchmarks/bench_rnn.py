"""Seconds per epoch-equivalent of the leaky RNN's BPTT candidates (SPEC §2.1).

An epoch-equivalent is what one main-model epoch asks of the RNN: a 1000-step transient
without gradient, then a 2000-step forward with gradient and the backward of a loss that
uses both the outputs z and the rates tanh(x) of both groups, at batch 20 and N = 40.

Candidates, all on the same `LeakyRNN` parameters and the same batch:
  autograd loop       the update equation step by step, autograd records every step
  autograd + drive    α·(u @ w_in + b) + σ·ξ precomputed in one product, split by unbind
                      (indexing it per step would make the backward O(T²)); one addmm a step
  hand-written        `mifd.models.LeakyRNN` (`LeakyIntegration`: BPTT written out), a
                      cohort of one run
  jit autograd        TorchScript (deprecated in torch 2.x) of the "autograd + drive" loop
  jit hand-written    TorchScript of both hand-written loops
  compile step        torch.compile of one update step, called every step
Not candidates: torch.compile of the whole loop unrolls it (here 115 s to compile 50 steps,
390 s for 200, and 39 µs a step once compiled), and torch.compile of the `scan` higher-order
op fails on CPU in torch 2.13 (InductorError: DataDependentOutputException).

Each repeat times every candidate once, in turn, so that load from other processes falls
on all of them alike. Prints median and best seconds, the ratio of medians to the autograd
loop of the same run, and the largest relative difference of the candidate's parameter
gradients from the autograd loop's, for each thread count asked for.

    .venv/bin/python benchmarks/bench_rnn.py --threads 1 2 --repeats 7
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace

import torch

from mifd.config import ModelConfig
from mifd.models import LeakyRNN, draw_noise, split_groups

N_TRANSIENT, N_LEARN, BATCH = 1000, 2000, 20

Tensor = torch.Tensor
Run = Callable[[LeakyRNN, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
"""(model, inputs, x0, noise) -> (rates tanh(x), outputs z), both batch-first, with gradient."""
Transient = Callable[[LeakyRNN, Tensor, Tensor, Tensor], Tensor]
"""(model, inputs, x0, noise) -> the last state, without gradient."""

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")


def _single(model: LeakyRNN) -> SimpleNamespace:
    """The one run of a one-run `LeakyRNN` (its parameters without the run axis, as views
    that carry gradient to the model), for the candidates written for a single network."""
    return SimpleNamespace(alpha=model.alpha, noise_std=model.noise_std,
                           **{name: p[0] for name, p in model.named_parameters()})


def _with_readout(model: LeakyRNN, states: list[Tensor]) -> tuple[Tensor, Tensor]:
    rates = torch.tanh(torch.stack(states, 1))
    return rates, rates @ model.w_out + model.b_out


def _equation_step(model: LeakyRNN, x, u_k, xi_k):
    """The update equation of SPEC §2.1 as written."""
    a = model.alpha
    recurrent = torch.tanh(x) @ model.w_rec
    return (1 - a) * x + a * (u_k @ model.w_in + model.b + recurrent) + model.noise_std * xi_k


def autograd_loop(model: LeakyRNN, inputs, x0, noise):
    model = _single(model)
    x, states = x0, []
    for k in range(inputs.shape[1]):
        x = _equation_step(model, x, inputs[:, k], noise[:, k])
        states.append(x)
    return _with_readout(model, states)


@torch.no_grad()
def autograd_loop_transient(model: LeakyRNN, inputs, x0, noise):
    model = _single(model)
    x = x0
    for k in range(inputs.shape[1]):
        x = _equation_step(model, x, inputs[:, k], noise[:, k])
    return x


def _drive(model: LeakyRNN, inputs, noise) -> Tensor:
    """α·(u @ w_in + b) + σ·ξ, (T, batch, N)."""
    return (model.alpha * (inputs.transpose(0, 1) @ model.w_in + model.b)
            + model.noise_std * noise.transpose(0, 1)).contiguous()


def _step(x: Tensor, drive_k: Tensor, w_rec: Tensor, alpha: float) -> Tensor:
    return torch.addmm(torch.add(drive_k, x, alpha=1.0 - alpha), torch.tanh(x), w_rec, alpha=alpha)


def drive_loop(model: LeakyRNN, inputs, x0, noise, step=_step):
    """Precomputed drive; x ← addmm((1 − α)·x + c[k], tanh x, w_rec, α) under autograd."""
    model = _single(model)
    x, states = x0, []
    for drive_k in _drive(model, inputs, noise).unbind(0):
        x = step(x, drive_k, model.w_rec, model.alpha)
        states.append(x)
    return _with_readout(model, states)


@torch.no_grad()
def drive_loop_transient(model: LeakyRNN, inputs, x0, noise, step=_step):
    model = _single(model)
    x = x0
    for drive_k in _drive(model, inputs, noise).unbind(0):
        x = step(x, drive_k, model.w_rec, model.alpha)
    return x


def hand_written(model: LeakyRNN, inputs, x0, noise):
    _, rates, outputs = model.forward_with_rates(inputs[None], x0[None], noise[None])
    return rates[0], outputs[0]


def hand_written_transient(model: LeakyRNN, inputs, x0, noise):
    return model.run_transient(inputs[None], x0[None], noise[None])[0]


@torch.jit.script
def _scripted_drive_loop(drive: Tensor, x0: Tensor, w_rec: Tensor,
                         alpha: float) -> list[Tensor]:
    x = x0
    states: list[Tensor] = []
    for drive_k in drive.unbind(0):
        x = torch.addmm(torch.add(drive_k, x, alpha=1.0 - alpha), torch.tanh(x), w_rec, alpha=alpha)
        states.append(x)
    return states


def jit_autograd(model: LeakyRNN, inputs, x0, noise):
    model = _single(model)
    drive = _drive(model, inputs, noise)
    return _with_readout(model, _scripted_drive_loop(drive, x0, model.w_rec, model.alpha))


@torch.jit.script
def _scripted_forward(drive: Tensor, x0: Tensor, w_rec: Tensor,
                      alpha: float) -> tuple[Tensor, Tensor]:
    states = torch.empty([drive.shape[0] + 1, x0.shape[0], x0.shape[1]], dtype=x0.dtype)
    rates = torch.empty_like(states)
    states[0] = x0
    states[1:] = drive
    x = states.unbind(0)
    r = rates.unbind(0)
    for k in range(drive.shape[0]):
        torch.tanh(x[k], out=r[k])
        x[k + 1].add_(x[k], alpha=1.0 - alpha).addmm_(r[k], w_rec, alpha=alpha)
    torch.tanh(x[-1], out=r[-1])
    return states, rates


@torch.jit.script
def _scripted_backward(adjoint: Tensor, deriv: Tensor, w_rec: Tensor,
                       alpha: float) -> None:
    lam = adjoint.unbind(0)
    d = deriv.unbind(0)
    w_rec_t = w_rec.t()
    for k in range(len(lam) - 1, 0, -1):
        lam[k - 1].add_(lam[k], alpha=1.0 - alpha).addcmul_(lam[k] @ w_rec_t, d[k], value=alpha)


class _ScriptedIntegration(torch.autograd.Function):
    """`LeakyIntegration` with both loops in TorchScript."""

    @staticmethod
    def forward(ctx, drive, x0, w_rec, alpha):
        states, rates = _scripted_forward(drive, x0, w_rec, alpha)
        ctx.save_for_backward(rates, w_rec)
        ctx.alpha = alpha
        return states[1:], rates[1:]

    @staticmethod
    def backward(ctx, grad_states, grad_rates):
        rates, w_rec = ctx.saved_tensors
        a, n = ctx.alpha, w_rec.shape[0]
        deriv = rates.square().neg_().add_(1.0)
        adjoint = torch.addcmul(grad_states.contiguous(), grad_rates, deriv[1:])
        _scripted_backward(adjoint, deriv, w_rec, a)
        grad_x0 = torch.addcmul(adjoint[0] * (1 - a), adjoint[0] @ w_rec.t(), deriv[0], value=a)
        return adjoint, grad_x0, a * rates[:-1].reshape(-1, n).t() @ adjoint.reshape(-1, n), None


def jit_hand_written(model: LeakyRNN, inputs, x0, noise):
    model = _single(model)
    drive = _drive(model, inputs, noise)
    _, rates = _ScriptedIntegration.apply(drive, x0, model.w_rec, model.alpha)
    rates = rates.transpose(0, 1)
    return rates, rates @ model.w_out + model.b_out


@torch.no_grad()
def jit_hand_written_transient(model: LeakyRNN, inputs, x0, noise):
    model = _single(model)
    return _scripted_forward(_drive(model, inputs, noise), x0, model.w_rec, model.alpha)[0][-1]


_compiled_step = torch.compile(_step, dynamic=False)

CANDIDATES: dict[str, tuple[Run, Transient]] = {
    "autograd loop": (autograd_loop, autograd_loop_transient),
    "autograd + drive": (drive_loop, drive_loop_transient),
    "hand-written": (hand_written, hand_written_transient),
    "jit autograd": (jit_autograd, drive_loop_transient),
    "jit hand-written": (jit_hand_written, jit_hand_written_transient),
    "compile step": (partial(drive_loop, step=_compiled_step),
                     partial(drive_loop_transient, step=_compiled_step)),
}


def epoch(candidate: tuple[Run, Transient], model: LeakyRNN, batch: dict[str, Tensor]) -> float:
    """Seconds for one epoch-equivalent: transient, forward with gradient, backward."""
    run, transient = candidate
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    x_last = transient(model, batch["u_transient"], batch["x0"], batch["xi_transient"])
    rates, outputs = run(model, batch["u_learn"], x_last, batch["xi_learn"])
    g1, g2 = split_groups(rates)  # stands in for the MI term: a gradient into both groups
    loss = (outputs - batch["target"]).square().mean() + (g1 * g2).mean().square()
    loss.backward()
    return time.perf_counter() - start


def _gradients(model: LeakyRNN) -> list[Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def _relative_difference(grads: list[Tensor], reference: list[Tensor]) -> float:
    """Largest ‖Δ‖∞ / ‖reference‖∞ over the parameter tensors."""
    return max(((g - r).abs().max() / r.abs().max()).item() for g, r in zip(grads, reference))


def make_batch(generator: torch.Generator) -> dict[str, Tensor]:
    inputs = (torch.rand(BATCH, N_TRANSIENT + N_LEARN, 4, generator=generator) < 0.02).float()
    noise = draw_noise(generator, (BATCH, N_TRANSIENT + N_LEARN, 40))
    return dict(
        u_transient=inputs[:, :N_TRANSIENT], u_learn=inputs[:, N_TRANSIENT:],
        xi_transient=noise[:, :N_TRANSIENT], xi_learn=noise[:, N_TRANSIENT:],
        x0=draw_noise(generator, (BATCH, 40)),
        target=torch.sign(torch.randn(BATCH, N_LEARN, 2, generator=generator)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    model = LeakyRNN(ModelConfig(), generators=generator)
    batch = make_batch(generator)
    names = ["autograd loop"] + [n for n in args.only if n != "autograd loop"]
    for threads in args.threads:
        torch.set_num_threads(threads)
        difference: dict[str, float] = {}
        for name in names:  # warm-up (torch.compile compiles here) and gradient check
            start = time.perf_counter()
            epoch(CANDIDATES[name], model, batch)
            if name == "compile step" and threads == args.threads[0]:
                seconds = time.perf_counter() - start
                print(f"compile step: first epoch, compilation included: {seconds:.1f} s")
            if name == "autograd loop":
                reference = _gradients(model)
            difference[name] = _relative_difference(_gradients(model), reference)
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.repeats):
            for name in names:
                times[name].append(epoch(CANDIDATES[name], model, batch))
        base = statistics.median(times["autograd loop"])
        print(f"\n{threads} thread(s), {args.repeats} repeats, batch {BATCH}, "
              f"transient {N_TRANSIENT} + BPTT {N_LEARN} steps, float32")
        header = f"{'candidate':<18} {'median s':>9} {'best s':>8} {'ratio':>6}"
        print(f"{header} {'grad rel. diff':>15}")
        for name in names:
            median = statistics.median(times[name])
            print(f"{name:<18} {median:9.4f} {min(times[name]):8.4f} {median / base:6.2f} "
                  f"{difference[name]:15.1e}")


if __name__ == "__main__":
    main()
