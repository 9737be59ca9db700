"""The alternating training of the working-memory RNN and its statistics network (SPEC §5.1).

One epoch: `n_sm_steps` critic (SM) steps, each on a fresh batch started from x0 = 0, that
maximise the MINE estimate Î between the two groups' rates; then one model (MM) step, on a
fresh batch started from x0 ~ N(0, I), that minimises

    MSE + c_reg (‖W_rec‖² + ‖W_out‖²) + c_reg_in ‖W_in‖² + λ Î.

With λ = 0 (the control) everything else is identical and Î is only observed. The run
itself (checkpoints, resume, failures, the stored record) is `runs.train_run`'s.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import store
from .config import RunConfig
from .mine import critic_step, make_critic_optimizer
from .models import LeakyRNN, split_groups
from .optim import clip_per_tensor_norm, make_optimizer
from .runs import Loop, RunState, build_networks, train_run
from .tasks import wm_batch

HISTORY_KEYS = (
    "mse", "accuracy", "accuracy_bit1", "accuracy_bit2", "mi_before", "mi_after", "l2",
    "loss", "grad_norm",
)


def init_wm(config: RunConfig, seed: int, device: str = "cpu") -> RunState:
    """Model, statistics network, optimisers and random streams of a fresh run (see
    `runs.build_networks` for what the device changes)."""
    model, estimator, generator = build_networks(config, seed, device, LeakyRNN)
    t = config.training
    model_opt = make_optimizer(model.parameters(), t.optimizer, t.lr, t.eps, rho=t.rho,
                               eps_inside_sqrt=t.rmsprop_eps_inside_sqrt)
    critic_opt = make_critic_optimizer(estimator, config.estimator,
                                       eps_inside_sqrt=t.rmsprop_eps_inside_sqrt)
    return RunState(model, estimator, model_opt, critic_opt, generator,
                    np.random.default_rng(seed), history={k: [] for k in HISTORY_KEYS})


def _segment(state: RunState, config: RunConfig, x0_normal: bool, grad: bool,
             n_batches: int = 1):
    """`n_batches` fresh batches → 1000-step transient (no grad) → learning segment.

    The batches are drawn one after another and run through the RNN together, as one batch
    of n_batches·B sequences (the RNN is the same for all of them). Returns
    (x (n_batches·B, T, N), z (n_batches·B, T, 2), targets (n_batches·B, T, 2)) of the
    learning segment.
    """
    task = config.task
    batches = [wm_batch(task, state.rng) for _ in range(n_batches)]
    device = state.device
    inputs = torch.from_numpy(np.concatenate([b.inputs for b in batches])).to(device)
    targets = torch.from_numpy(
        np.concatenate([b.targets[:, task.n_transient:] for b in batches])).to(device)
    n_units = config.model.n_units
    shape = (inputs.shape[0], n_units)
    x0 = (torch.randn(shape, generator=state.generator, device=device) if x0_normal
          else torch.zeros(shape, device=device))
    noise = torch.randn((*inputs.shape[:2], n_units), generator=state.generator, device=device)
    x_start = state.model.run_transient(inputs[:, :task.n_transient], x0,
                                        noise[:, :task.n_transient])
    with torch.set_grad_enabled(grad):
        x, z = state.model(inputs[:, task.n_transient:], x_start, noise[:, task.n_transient:])
    return x, z, targets


def critic_phase(state: RunState, config: RunConfig, n_steps: int, x0_normal: bool
                 ) -> list[float]:
    """`n_steps` SM steps, each on its own fresh batch, with the RNN frozen.

    The RNN runs once over all n_steps batches (exactly what n_steps separate runs of the
    frozen RNN give, at a fraction of the cost). Returns Î before each update (nats).
    """
    with torch.no_grad():
        x, _, _ = _segment(state, config, x0_normal, grad=False, n_batches=n_steps)
    values = []
    for chunk in x.split(config.task.batch_size):
        g1, g2 = split_groups(torch.tanh(chunk))
        values.append(critic_step(state.estimator, state.critic_opt, g1, g2, state.generator,
                                  config.estimator))
    return values


def accuracy(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-output sign accuracy (SPEC §3.1): label round((y+1)/2) (half to even), prediction z > 0.

    z, y: (B, T, n_out) → (n_out,) fractions.
    """
    labels = torch.round((y + 1) / 2)
    return ((z > 0).to(y.dtype) == labels).to(y.dtype).mean(dim=(0, 1))


def l2_penalty(model: LeakyRNN, config: RunConfig) -> torch.Tensor:
    """c_reg (‖W_rec‖² + ‖W_out‖²) + c_reg_in ‖W_in‖² (Keras l2: no ½ factor)."""
    t = config.training
    return (t.c_reg * (model.w_rec.square().sum() + model.w_out.square().sum())
            + t.c_reg_in * model.w_in.square().sum())


def model_phase_step(state: RunState, config: RunConfig) -> dict[str, float]:
    """One MM step; returns the logged values, all taken before the update."""
    t = config.training
    x, z, y = _segment(state, config, x0_normal=True, grad=True)
    mse = (z - y).square().mean()
    l2 = l2_penalty(state.model, config)
    g1, g2 = split_groups(torch.tanh(x))
    for p in state.estimator.parameters():
        p.requires_grad_(False)
    try:
        if t.lambda_mi > 0:
            mi = state.estimator(g1, g2, state.generator)
            loss = mse + l2 + t.lambda_mi * mi
        else:
            with torch.no_grad():
                mi = state.estimator(g1, g2, state.generator)
            loss = mse + l2
    finally:
        for p in state.estimator.parameters():
            p.requires_grad_(True)
    state.model_opt.zero_grad(set_to_none=True)
    loss.backward()
    params = list(state.model.parameters())
    grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
    if t.clip_norm is not None:
        clip_per_tensor_norm(params, t.clip_norm)
    state.model_opt.step()
    acc = accuracy(z.detach(), y)
    return {
        "mse": mse.item(), "accuracy": acc.mean().item(), "accuracy_bit1": acc[0].item(),
        "accuracy_bit2": acc[1].item(), "mi_after": mi.item(), "l2": l2.item(),
        "loss": loss.item(), "grad_norm": grad_norm.item(),
    }


def pretrain(state: RunState, config: RunConfig) -> None:
    """The critic's pre-training: `n_sm_pretrain` SM epochs from x0 ~ N(0, I), run through the
    RNN in chunks of `n_sm_steps` batches."""
    t = config.training
    chunk = max(t.n_sm_steps, 1)
    for start in range(0, t.n_sm_pretrain, chunk):
        critic_phase(state, config, min(chunk, t.n_sm_pretrain - start), x0_normal=True)


def epoch(state: RunState, config: RunConfig) -> dict[str, float]:
    """One epoch: `n_sm_steps` SM steps, then one MM step; returns the logged values, with
    "mi_before" the Î of the last SM step before its update."""
    mi_values = critic_phase(state, config, config.training.n_sm_steps, x0_normal=False)
    logged = model_phase_step(state, config)
    logged["mi_before"] = mi_values[-1] if mi_values else float("nan")
    return logged


WM_LOOP = Loop(task="wm", history_keys=HISTORY_KEYS, init=init_wm, pretrain=pretrain,
               epoch=epoch, postfix=("loss", "accuracy", "mi_after"))


def train_wm(config: RunConfig, seed: int, root: Path | None = None, progress: bool = True,
             stop_after: int | None = None, on_epoch: Callable[[RunState], None] | None = None,
             device: str = "cpu") -> store.RunRecord | None:
    """Train (or resume) one working-memory run; see `runs.train_run`."""
    return train_run(WM_LOOP, config, seed, root, progress, stop_after, on_epoch, device)
