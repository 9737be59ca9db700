"""The alternating training of the separation GRU and its statistics network (SPEC §5.2),
for a cohort of runs at once (a single run is a cohort of one; see `runs`): every run
draws its batches, noise and critic draws from its own streams in the order it would alone.

One epoch is `n_mm_steps` model (MM) steps. Before each, the critic takes `n_sm_steps` (SM)
steps, each on its own batch drawn with replacement from the training pool (the GRU runs
without gradient), and Î is
evaluated once more with the updated critic on the last of those batches (the epoch's
"mi" is the mean of these). The MM step, on a fresh batch, minimises

    MSE over t ≥ washout + λ Î + c_reg (‖W_hh‖² + ‖W_out‖²) + c_reg_in ‖W_ih‖² + c_L1 ‖W_hh‖₁

with Adam and no clipping, Î taken over all steps of the hidden states h with Gaussian noise
of std `estimator.noise_std` added to both groups. (SPEC's λ_L2 covers W_ih and W_hh and
λ_out covers W_out; both are 1e-5 in the paper, so the two groupings give the same loss.
c_L1 = 0 by default: the sparsity penalty on all three gates' recurrent kernel is mifd's.)
The cohort minimises the sum of its runs' losses, each with its own λ. After every epoch
each network is evaluated on the fixed test set: test MSE, R² per output over all steps
(as the authors score it) and over t ≥ washout (as the loss sees it), and the indices of
`analysis.separation_indices`, all logged in the history.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch

from . import analysis, store
from .config import RunConfig
from .mine import critic_step as _critic_step
from .mine import make_critic_optimizer
from .models import GRUNet, split_groups
from .optim import make_optimizer
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
from .tasks import held_out_indices, separation_batch

N_OUTPUTS = 6
HISTORY_KEYS = (
    "loss", "mse", "mi", "l2", "l1", "test_mse", "r2_mean", "r2_min",
    *(f"r2_{k}" for k in range(N_OUTPUTS)), "r2_mean_scored", "r2_min_scored",
    "Q_corr", "Q_str", "D_corr", "D_out",
)


def init_separation(configs: list[RunConfig] | RunConfig, seeds: list[int] | int,
                    device: str = "cpu", data: dict | None = None) -> CohortState[GRUNet]:
    """GRUs, statistics networks, Adam optimisers and random streams of a fresh cohort (one
    config and seed: a cohort of one), with the training pool and the test set, which all
    runs of a cohort share (the same task settings), kept in `state.data`: `data` ({"pool",
    "test"}, each a SeparationBatch) when given, else the configured chaos data (generated
    or cached)."""
    if isinstance(configs, RunConfig):
        configs, seeds = [configs], [cast(int, seeds)]
    model, estimator, members = build_networks(configs, cast(list[int], seeds), device, GRUNet)
    config = configs[0]
    t = config.training
    model_opt = make_optimizer(model.parameters(), t.optimizer, t.lr, t.eps, rho=t.rho)
    critic_opt = make_critic_optimizer(estimator, config.estimator)
    if data is None:
        task = config.separation_task
        data = {"pool": separation_batch(range(task.pool_size), task),
                "test": separation_batch(held_out_indices(task), task)}
    for member in members:
        member.history = {k: [] for k in HISTORY_KEYS}
    return CohortState(model, estimator, model_opt, critic_opt, members, data=data)


def _batch(state: CohortState[GRUNet], config: RunConfig, n_sequences: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """`n_sequences` pairs per run, drawn with replacement from the pool by each run's own
    numpy stream: inputs (R, n, T, 3), targets (R, n, T, 6) on the cohort's device."""
    pool = state.data["pool"]
    rows = np.stack([m.rng.integers(0, len(pool.inputs), size=n_sequences)
                     for m in state.members])
    return (torch.from_numpy(pool.inputs[rows]).to(state.device),
            torch.from_numpy(pool.targets[rows]).to(state.device))


def noisy_groups(state: CohortState[GRUNet], config: RunConfig, h: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """G1 and G2 of h (R, batch, T, N), each with its own N(0, noise_std²) noise (SPEC
    §4.2: outside the estimator, so the shuffled term is noisy too), (R, batch, T, N/2);
    each run's noise comes from its own generator. Without gradient the two are views of
    an array the cohort reuses: the next call overwrites them."""
    noise = reused_array(state, tuple(h.shape))
    draw_normal([], list(noise), state.generators)
    if h.requires_grad:
        return split_groups(torch.add(h, noise, alpha=config.estimator.noise_std))
    return split_groups(noise.mul_(config.estimator.noise_std).add_(h))


def critic_phase(state: CohortState[GRUNet], config: RunConfig, n_steps: int) -> np.ndarray:
    """`n_steps` SM steps, each on its own random batch per run run through the GRUs without
    gradient, then Î with the updated critics on the last batch: (R,) nats.

    The batches go through the GRUs one by one: running all n_steps·B sequences as one batch
    gives the same states (to float rounding) and was measured slower
    (benchmarks/bench_separation.py), while it needs n_steps times the memory.
    """
    if n_steps < 1:
        raise ValueError(f"critic_phase needs n_steps ≥ 1, got {n_steps}")
    for _ in range(n_steps):
        inputs, _ = _batch(state, config, config.separation_task.batch_size)
        with torch.no_grad():
            h = state.model.hidden(inputs, reuse_buffers=True)
        _critic_step(state.estimator, state.critic_opt, *noisy_groups(state, config, h),
                     state.generators, config.estimator)
    with torch.no_grad():
        return state.estimator(*noisy_groups(state, config, h), state.generators).cpu().numpy()


def l2_penalty(model: GRUNet, config: RunConfig) -> torch.Tensor:
    """c_reg (‖W_hh‖² + ‖W_out‖²) + c_reg_in ‖W_ih‖² per run, (R,); biases are not penalised."""
    t = config.training

    def sq(p: torch.Tensor) -> torch.Tensor:
        return p.square().sum(dim=(1, 2))

    return t.c_reg * (sq(model.weight_hh) + sq(model.weight_out)) + t.c_reg_in * sq(model.weight_ih)


def model_step(state: CohortState[GRUNet], config: RunConfig) -> list[dict[str, float]]:
    """One MM step for every run on a fresh batch; returns each run's MSE (t ≥ washout), L2,
    L1 and total loss. The cohort minimises the sum of the runs' losses (they share no
    parameter); λ_r = 0 adds nothing to run r's loss or gradient, but Î is evaluated for
    every run, so a control draws from its streams what it would in any cohort."""
    washout = config.separation_task.washout
    inputs, targets = _batch(state, config, config.separation_task.batch_size)
    h, y = state.model(inputs)
    mse = (y[:, :, washout:] - targets[:, :, washout:]).square().mean(dim=(1, 2, 3))
    l2 = l2_penalty(state.model, config)
    l1 = l1_penalty(state, state.model.weight_hh)
    _, penalty = mi_penalty(state, *noisy_groups(state, config, h))
    loss = mse + l2 + l1 + penalty
    state.model_opt.zero_grad(set_to_none=True)
    loss.sum().backward()
    state.model_opt.step()
    columns = {"mse": mse, "l2": l2, "l1": l1, "loss": loss}
    values = {k: v.detach().cpu().tolist() for k, v in columns.items()}
    return [{k: v[r] for k, v in values.items()} for r in range(len(state.members))]


def scores(targets: np.ndarray, outputs: np.ndarray, washout: int) -> dict[str, float]:
    """Test MSE (t ≥ washout) and R² of every output, over all steps as the authors score
    it ("r2_mean", "r2_min", "r2_k") and over the scored steps t ≥ washout as the loss sees
    it ("r2_mean_scored", "r2_min_scored"). targets, outputs: (B, T, 6)."""
    r2 = analysis.r_squared(targets, outputs)
    scored = analysis.r_squared(targets[:, washout:], outputs[:, washout:])
    return {
        "test_mse": float(((outputs[:, washout:] - targets[:, washout:]) ** 2).mean()),
        "r2_mean": float(r2.mean()), "r2_min": float(r2.min()),
        **{f"r2_{k}": float(v) for k, v in enumerate(r2)},
        "r2_mean_scored": float(scored.mean()), "r2_min_scored": float(scored.min()),
    }


def test_evaluation(model: GRUNet, test, washout: int, device: torch.device | str = "cpu"
                    ) -> list[dict[str, float]]:
    """Per run: `scores` and the differentiation indices on the fixed test set `test` (a
    SeparationBatch), which every run of the cohort sees; NaN for every value of a run
    whose states or outputs are not finite (it has diverged)."""
    inputs = torch.from_numpy(test.inputs).to(device)
    with torch.no_grad():
        h, y = model(inputs.expand(model.runs, *inputs.shape))
    h, y = h.cpu().numpy(), y.cpu().numpy()
    rows = []
    for r in range(model.runs):
        if not (np.isfinite(h[r]).all() and np.isfinite(y[r]).all()):  # a diverged run
            rows.append(dict.fromkeys(HISTORY_KEYS, float("nan")))
            continue
        rows.append({**scores(test.targets, y[r], washout),
                     **analysis.separation_indices(
                         model.weight_out[r].detach().cpu().numpy(),
                         model.recurrent_block("h", r).detach().cpu().numpy(), h[r], y[r],
                         washout)})
    return rows


def pretrain(state: CohortState[GRUNet]) -> None:
    """The critics' pre-training: `n_sm_pretrain` SM steps on random batches."""
    config = state.config
    t = config.training
    chunk = max(t.n_sm_steps, 1)
    for start in range(0, t.n_sm_pretrain, chunk):
        critic_phase(state, config, min(chunk, t.n_sm_pretrain - start))


def epoch(state: CohortState[GRUNet]) -> list[dict[str, float]]:
    """`n_mm_steps` × (SM phase, MM step), then the test evaluation; each run's logged
    loss, MSE, L2 and Î are means over the epoch's steps."""
    config = state.config
    t = config.training
    runs = len(state.members)
    steps = []
    for _ in range(t.n_mm_steps):
        mi = (critic_phase(state, config, t.n_sm_steps) if t.n_sm_steps
              else np.full(runs, np.nan))
        steps.append([{**values, "mi": float(mi[r])}
                      for r, values in enumerate(model_step(state, config))])
    tests = test_evaluation(state.model, state.data["test"], config.separation_task.washout, state.device)
    return [{**tests[r], **{key: float(np.mean([s[r][key] for s in steps]))
                            for key in steps[0][r]}} for r in range(runs)]


def summary(history: dict) -> dict[str, float]:
    """A run's final mean test R² and Î (the last epoch's), for a sweep's table."""
    return {"r2": float(history["r2_mean"][-1]), "mi": float(history["mi"][-1])}


def bytes_per_run(config: RunConfig) -> int:
    """An upper estimate of the memory one run adds to a cohort, in bytes: the fused GRU's
    forward and backward arrays (`mifd.gru`), the critic phase's, the noise and the copies
    around them (≈30 floats per unit-step), and the critic's workspace."""
    task, est = config.separation_task, config.estimator
    rnn = 30 * task.batch_size * task.seq_len * config.model.n_units
    rows = est.sample_fraction * task.batch_size * task.seq_len
    return int(4 * (rnn + critic_bytes(rows, est.hidden)))


SEPARATION_LOOP = Loop(task="separation", description="chaotic separation",
                       history_keys=HISTORY_KEYS, init=init_separation, pretrain=pretrain,
                       epoch=epoch, postfix=("loss", "r2_mean", "mi"), summary=summary,
                       score=("r2", "mean test R²"), bytes_per_run=bytes_per_run)


def train_separation(config: RunConfig, seed: int, root: Path | None = None,
                     progress: bool = True, stop_after: int | None = None,
                     on_epoch: Callable[[CohortState], None] | None = None,
                     device: str = "cpu") -> store.RunRecord | None:
    """Train (or resume) one separation run, a cohort of one; see `runs.train_run`."""
    return train_run(SEPARATION_LOOP, config, seed, root, progress, stop_after, on_epoch,
                     device)


def train_separation_cohort(configs: Sequence[RunConfig], seeds: Sequence[int],
                            root: Path | None = None, progress: bool = True,
                            stop_after: int | None = None,
                            on_epoch: Callable[[CohortState], None] | None = None,
                            device: str = "cpu") -> list[Outcome]:
    """Train (or resume) separation runs as one cohort; see `runs.train_cohort`."""
    return train_cohort(SEPARATION_LOOP, configs, seeds, root, progress, stop_after, on_epoch,
                        device)
