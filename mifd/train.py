"""The alternating training of the working-memory RNN and its statistics network (SPEC §5.1),
for a cohort of runs at once (a single run is a cohort of one; see `runs`).

One epoch: `n_sm_steps` critic (SM) steps, each on a fresh batch started from x0 = 0, that
maximise the MINE estimate Î between the two groups' rates; then one model (MM) step, on a
fresh batch started from x0 ~ N(0, I), that minimises, for each run r,

    MSE_r + c_reg (‖W_rec‖² + ‖W_out‖²) + c_reg_in ‖W_in‖² + c_L1,r ‖W_rec‖₁ + λ_r Î_r

(c_L1 = 0 by default: the sparsity penalty is mifd's, for chapter 6).

The cohort minimises the sum over runs; runs share no parameter, so each run's gradient is
exactly its own. With λ_r = 0 (a control) everything else is identical and Î_r is only
observed. Every run draws its batches (numpy) and its noise and critic draws (torch) from
its own streams in the order it would alone. The run itself (checkpoints, resume,
failures, the stored records) is `runs.train_cohort`'s.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch

from . import store
from .config import RunConfig
from .mine import TERM_NAMES, critic_step, make_critic_optimizer
from .models import LeakyRNN, split_groups
from .optim import clip_per_tensor_norm, make_optimizer
from .runs import (
    CohortState,
    Loop,
    Outcome,
    build_networks,
    critic_bytes,
    draw_normal,
    l1_penalty,
    mi_penalty,
    reused_array,
    train_cohort,
    train_run,
)
from .tasks import cohort_onsets, wm_signals

HISTORY_KEYS = (
    "mse", "accuracy", "accuracy_bit1", "accuracy_bit2", "mi_before", "mi_after", "l2",
    "l1", "loss", "grad_norm", *TERM_NAMES,
)


def init_wm(configs: Sequence[RunConfig] | RunConfig, seeds: Sequence[int] | int,
            device: str = "cpu") -> CohortState[LeakyRNN]:
    """Models, statistics networks, optimisers and random streams of a fresh cohort (one
    config and seed: a cohort of one); see `runs.build_networks` for what the device changes."""
    if isinstance(configs, RunConfig):
        configs, seeds = [configs], [cast(int, seeds)]
    model, estimator, members = build_networks(configs, cast(Sequence[int], seeds), device, LeakyRNN)
    t = configs[0].training
    model_opt = make_optimizer(model.parameters(), t.optimizer, t.lr, t.eps, rho=t.rho,
                               eps_inside_sqrt=t.rmsprop_eps_inside_sqrt)
    critic_opt = make_critic_optimizer(estimator, configs[0].estimator,
                                       eps_inside_sqrt=t.rmsprop_eps_inside_sqrt)
    for member in members:
        member.history = {k: [] for k in HISTORY_KEYS}
    return CohortState(model, estimator, model_opt, critic_opt, members)


def _segment(state: CohortState[LeakyRNN], x0_normal: bool, grad: bool, n_batches: int = 1):
    """`n_batches` fresh batches per run → 1000-step transient (no grad) → learning segment.

    Each run draws its batches one after another from its own numpy stream, then x0 and the
    noise from its own torch generator; the cohort's batches are computed at once and all
    runs' batches go through the RNNs together (each run's RNN is the same for all of its
    batches). Returns the learning segment's states x (R, n_batches·B, T, N), then, with
    `grad`, the outputs z (R, n_batches·B, T, 2) carrying gradient, without it the rates
    tanh(x) (R, n_batches·B, T, N) — x and the rates then live in arrays that the next call
    without gradient overwrites — and last, with `grad`, the targets (R, n_batches·B, T, 2)
    (None without: the critic needs none).
    """
    task = state.config.wm_task
    device, runs = state.device, len(state.members)
    onsets = cohort_onsets(task, [m.rng for m in state.members], n_batches,
                           workers=torch.get_num_threads())
    inputs, targets, _ = wm_signals(task, torch.from_numpy(onsets).to(device), targets=grad)
    n_seq = n_batches * task.batch_size
    inputs = inputs.view(runs, n_seq, *inputs.shape[1:])
    if grad:
        assert targets is not None  # wm_signals computes them when asked
        targets = targets[:, task.n_transient:].reshape(runs, n_seq, -1, targets.shape[-1])
    n_units = state.config.model.n_units
    x0 = torch.zeros((runs, n_seq, n_units), device=device)
    noise = reused_array(state, (runs, n_seq, inputs.shape[2], n_units))
    draw_normal([x0[r] for r in range(runs)] if x0_normal else [],
                [noise[r] for r in range(runs)], state.generators)
    x_start = state.model.run_transient(inputs[:, :, :task.n_transient], x0,
                                        noise[:, :, :task.n_transient])
    learning = inputs[:, :, task.n_transient:], x_start, noise[:, :, task.n_transient:]
    if not grad:
        with torch.no_grad():
            x, rates = state.model.run(*learning, reuse_buffers=True)
        return x, rates, targets
    x, z = state.model(*learning)
    return x, z, targets


def critic_phase(state: CohortState[LeakyRNN], n_steps: int, x0_normal: bool) -> np.ndarray:
    """`n_steps` SM steps for every run, each on its own fresh batch, with the RNNs frozen.

    The RNNs run once over all n_steps batches (exactly what n_steps separate runs of the
    frozen RNN give, at a fraction of the cost). Returns Î before each update, (n_steps, R)
    nats.
    """
    with torch.no_grad():
        _, rates, _ = _segment(state, x0_normal, grad=False, n_batches=n_steps)
    values = []
    for chunk in rates.split(state.config.task.batch_size, dim=1):
        g1, g2 = split_groups(chunk)
        values.append(critic_step(state.estimator, state.critic_opt, g1, g2, state.generators,
                                  state.config.estimator))
    return np.array(values).reshape(n_steps, len(state.members))


def accuracy(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-output sign accuracy (SPEC §3.1): label round((y+1)/2) (half to even), prediction z > 0.

    z, y: (..., B, T, n_out) → (..., n_out) fractions (per run for a cohort's outputs).
    """
    labels = torch.round((y + 1) / 2)
    return ((z > 0).to(y.dtype) == labels).to(y.dtype).mean(dim=(-3, -2))


def l2_penalty(model: LeakyRNN, config: RunConfig) -> torch.Tensor:
    """c_reg (‖W_rec‖² + ‖W_out‖²) + c_reg_in ‖W_in‖² per run, (R,) (Keras l2: no ½ factor)."""
    t = config.training

    def sq(p: torch.Tensor) -> torch.Tensor:
        return p.square().sum(dim=(1, 2))

    return t.c_reg * (sq(model.w_rec) + sq(model.w_out)) + t.c_reg_in * sq(model.w_in)


def model_phase_step(state: CohortState[LeakyRNN]) -> list[dict[str, float]]:
    """One MM step for every run; returns each run's logged values, all taken before the
    update."""
    config = state.config
    t = config.training
    x, z, y = _segment(state, x0_normal=True, grad=True)
    mse = (z - y).square().mean(dim=(1, 2, 3))
    l2 = l2_penalty(state.model, config)
    l1 = l1_penalty(state, state.model.w_rec)
    g1, g2 = split_groups(torch.tanh(x))
    mi, penalty = mi_penalty(state, g1, g2)
    loss = mse + l2 + l1 + penalty
    state.model_opt.zero_grad(set_to_none=True)
    loss.sum().backward()
    params = list(state.model.parameters())
    grad_norm = torch.linalg.vector_norm(
        torch.stack([cast(torch.Tensor, p.grad).reshape(p.shape[0], -1).norm(dim=1) for p in params]), dim=0)
    if t.clip_norm is not None:
        clip_per_tensor_norm(params, t.clip_norm)
    state.model_opt.step()
    acc = accuracy(z.detach(), y)
    columns = {"mse": mse, "accuracy": acc.mean(-1), "accuracy_bit1": acc[:, 0],
               "accuracy_bit2": acc[:, 1], "mi_after": mi, "l2": l2, "l1": l1, "loss": loss,
               "grad_norm": grad_norm}
    values = {k: v.detach().cpu().tolist() for k, v in columns.items()}
    return [{k: v[r] for k, v in values.items()} for r in range(len(state.members))]


def step_gradients(state: CohortState[LeakyRNN]) -> list[dict[str, float]]:
    """The gradients each term of the model step's loss sends into the RNN, without a step:
    on one fresh model batch (as `model_phase_step` draws it), the L2 norm over every
    parameter of ∇MSE ("task") and of ∇(λ·Î) through the frozen critic ("mi", the model
    step's own `mi_penalty`, so zero for a control), each also per parameter ("task w_rec",
    "mi w_rec", …). Returns one {name: norm} per run, and "mi_estimate" the Î of that batch
    in nats."""
    x, z, y = _segment(state, x0_normal=True, grad=True)
    mse = (z - y).square().mean(dim=(1, 2, 3))
    mi, penalty = mi_penalty(state, *split_groups(torch.tanh(x)))
    names, params = zip(*state.model.named_parameters())
    norms = {}
    for term, value in {"task": mse.sum(), "mi": penalty.sum()}.items():
        grads = (torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
                 if value.requires_grad else [None] * len(params))
        per = {name: (torch.zeros(len(state.members)) if g is None
                      else g.detach().flatten(1).norm(dim=1).cpu())
               for name, g in zip(names, grads)}
        norms[term] = torch.stack(list(per.values())).norm(dim=0)
        norms.update({f"{term} {name}": v for name, v in per.items()})
    norms["mi_estimate"] = mi.detach().cpu()
    return [{k: float(v[r]) for k, v in norms.items()} for r in range(len(state.members))]


def pretrain(state: CohortState[LeakyRNN]) -> None:
    """The critics' pre-training: `n_sm_pretrain` SM epochs from x0 ~ N(0, I), run through
    the RNNs in chunks of `n_sm_steps` batches."""
    t = state.config.training
    chunk = max(t.n_sm_steps, 1)
    for start in range(0, t.n_sm_pretrain, chunk):
        critic_phase(state, min(chunk, t.n_sm_pretrain - start), x0_normal=True)


def epoch(state: CohortState[LeakyRNN]) -> list[dict[str, float]]:
    """One epoch: `n_sm_steps` SM steps, then one MM step; returns each run's logged values,
    with "mi_before" the Î of the last SM step before its update and the bound's terms on
    that step (`mine.dv_terms`: "mi_joint_term" − "mi_marginal_term" = "mi_before", and
    "marginal_score_max")."""
    mi_values = critic_phase(state, state.config.training.n_sm_steps, x0_normal=False)
    runs = len(state.members)
    terms = ({k: v.cpu().tolist() for k, v in state.estimator.last_terms.items()}
             if len(mi_values) else {k: [float("nan")] * runs for k in TERM_NAMES})
    logged = model_phase_step(state)
    for r, values in enumerate(logged):
        values["mi_before"] = float(mi_values[-1, r]) if len(mi_values) else float("nan")
        values.update({k: terms[k][r] for k in TERM_NAMES})
    return logged


def summary(history: dict) -> dict[str, float]:
    """A run's final accuracy and training Î (the last epoch's), for a sweep's table."""
    return {"accuracy": float(history["accuracy"][-1]), "mi": float(history["mi_before"][-1])}


def bytes_per_run(config: RunConfig) -> int:
    """An upper estimate of the memory one run adds to a cohort, in bytes (float32 arrays of
    the largest phase: the critic phase's noise, states and rates, and the critic's workspace)."""
    task, model, est = config.wm_task, config.model, config.estimator
    sequences = max(config.training.n_sm_steps, 1) * task.batch_size
    steps = task.n_transient + task.n_learn
    rnn = sequences * model.n_units * (steps + 2 * (task.n_learn + 1)
                                      + 2 * (task.n_transient + 1) + steps)
    rows = est.sample_fraction * task.batch_size * task.n_learn
    return int(4 * (rnn + critic_bytes(rows, est.hidden)))


WM_LOOP = Loop(task="wm", description="working memory", history_keys=HISTORY_KEYS,
               init=init_wm, pretrain=pretrain, epoch=epoch,
               postfix=("loss", "accuracy", "mi_after"), summary=summary,
               score=("accuracy", "accuracy"), bytes_per_run=bytes_per_run)


def train_wm(config: RunConfig, seed: int, root: Path | None = None, progress: bool = True,
             stop_after: int | None = None,
             on_epoch: Callable[[CohortState], None] | None = None,
             device: str = "cpu") -> store.RunRecord | None:
    """Train (or resume) one working-memory run, a cohort of one; see `runs.train_run`."""
    return train_run(WM_LOOP, config, seed, root, progress, stop_after, on_epoch, device)


def train_wm_cohort(configs: Sequence[RunConfig], seeds: Sequence[int],
                    root: Path | None = None, progress: bool = True,
                    stop_after: int | None = None,
                    on_epoch: Callable[[CohortState], None] | None = None,
                    device: str = "cpu") -> list[Outcome]:
    """Train (or resume) working-memory runs as one cohort; see `runs.train_cohort`."""
    return train_cohort(WM_LOOP, configs, seeds, root, progress, stop_after, on_epoch, device)
