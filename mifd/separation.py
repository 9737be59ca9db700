"""The alternating training of the separation GRU and its statistics network (SPEC §5.2).

One epoch is `n_mm_steps` model (MM) steps. Before each, the critic takes `n_sm_steps` (SM)
steps, each on its own batch drawn with replacement from the training pool (the GRU runs
without gradient), and Î is
evaluated once more with the updated critic on the last of those batches (the epoch's
"mi" is the mean of these). The MM step, on a fresh batch, minimises

    MSE over t ≥ washout + λ Î + c_reg (‖W_hh‖² + ‖W_out‖²) + c_reg_in ‖W_ih‖²

with Adam and no clipping, Î taken over all steps of the hidden states h with Gaussian noise
of std `estimator.noise_std` added to both groups. (SPEC's λ_L2 covers W_ih and W_hh and
λ_out covers W_out; both are 1e-5 in the paper, so the two groupings give the same loss.)
After every epoch the network is evaluated on the fixed test set: test MSE, R² per output
and the indices of `analysis.separation_indices`, all logged in the history.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import analysis, store
from .config import RunConfig
from .mine import make_critic_optimizer
from .mine import critic_step as _critic_step
from .models import GRUNet, split_groups
from .optim import make_optimizer
from .runs import CohortState, Loop, build_networks, train_run
from .tasks import held_out_indices, separation_batch

N_OUTPUTS = 6
HISTORY_KEYS = (
    "loss", "mse", "mi", "l2", "test_mse", "r2_mean", "r2_min",
    *(f"r2_{k}" for k in range(N_OUTPUTS)), "Q_corr", "Q_str", "D_corr", "D_out",
)


def init_separation(configs: list[RunConfig] | RunConfig, seeds: list[int] | int,
                    device: str = "cpu", data: dict | None = None) -> CohortState:
    """GRU, statistics network, Adam optimisers and random streams of a fresh run (a cohort
    of one: the GRU has no run axis yet), with the training pool and the test set kept in
    `state.data`: `data` ({"pool", "test"}, each a SeparationBatch) when given, else the
    configured chaos data (generated or cached)."""
    if isinstance(configs, RunConfig):
        configs, seeds = [configs], [seeds]
    model, estimator, members = build_networks(configs, seeds, device, GRUNet)
    config = configs[0]
    t = config.training
    model_opt = make_optimizer(model.parameters(), t.optimizer, t.lr, t.eps, rho=t.rho)
    critic_opt = make_critic_optimizer(estimator, config.estimator)
    if data is None:
        task = config.task
        data = {"pool": separation_batch(range(task.pool_size), task),
                "test": separation_batch(held_out_indices(task), task)}
    members[0].history = {k: [] for k in HISTORY_KEYS}
    return CohortState(model, estimator, model_opt, critic_opt, members, data=data)


def _batch(state: CohortState, config: RunConfig, n_sequences: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """`n_sequences` pairs drawn with replacement from the pool: inputs (n, T, 3), targets
    (n, T, 6) on the run's device."""
    pool = state.data["pool"]
    rows = state.members[0].rng.integers(0, len(pool.inputs), size=n_sequences)
    return (torch.from_numpy(pool.inputs[rows]).to(state.device),
            torch.from_numpy(pool.targets[rows]).to(state.device))


def noisy_groups(state: CohortState, config: RunConfig, h: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """G1 and G2 of h (R, batch, T, N), each with its own N(0, noise_std²) noise (SPEC
    §4.2: outside the estimator, so the shuffled term is noisy too), (R, batch, T, N/2)."""
    noise = torch.randn(h.shape, generator=state.members[0].generator, device=state.device)
    return split_groups(h + config.estimator.noise_std * noise)


def critic_phase(state: CohortState, config: RunConfig, n_steps: int) -> float:
    """`n_steps` SM steps, each on its own random batch run through the GRU without gradient,
    then Î with the updated critic on the last batch (returned, nats).

    The batches go through the GRU one by one: running all n_steps·B sequences as one batch
    gives the same states (to float rounding) and was measured no faster on this CPU
    (benchmarks/bench_separation.py), while it needs n_steps times the memory.
    """
    h = None
    for _ in range(n_steps):
        inputs, _ = _batch(state, config, config.task.batch_size)
        with torch.no_grad():
            h = state.model.hidden(inputs[None], reuse_buffers=True)
        _critic_step(state.estimator, state.critic_opt, *noisy_groups(state, config, h),
                     state.generators, config.estimator)
    with torch.no_grad():
        return state.estimator(*noisy_groups(state, config, h), state.generators).item()


def l2_penalty(model: GRUNet, config: RunConfig) -> torch.Tensor:
    """c_reg (‖W_hh‖² + ‖W_out‖²) + c_reg_in ‖W_ih‖²; biases are not penalised."""
    t = config.training
    return (t.c_reg * (model.weight_hh.square().sum() + model.weight_out.square().sum())
            + t.c_reg_in * model.weight_ih.square().sum())


def model_step(state: CohortState, config: RunConfig) -> dict[str, float]:
    """One MM step on a fresh batch; returns its MSE (t ≥ washout), L2 and total loss."""
    t, washout = config.training, config.task.washout
    inputs, targets = _batch(state, config, config.task.batch_size)
    h, y = state.model(inputs[None])
    y = y[0]
    mse = (y[:, washout:] - targets[:, washout:]).square().mean()
    l2 = l2_penalty(state.model, config)
    loss = mse + l2
    if t.lambda_mi > 0:
        for p in state.estimator.parameters():
            p.requires_grad_(False)
        try:
            loss = loss + t.lambda_mi * state.estimator(*noisy_groups(state, config, h),
                                                       state.generators)[0]
        finally:
            for p in state.estimator.parameters():
                p.requires_grad_(True)
    state.model_opt.zero_grad(set_to_none=True)
    loss.backward()
    state.model_opt.step()
    return {"mse": mse.item(), "l2": l2.item(), "loss": loss.item()}


def test_evaluation(model: GRUNet, test, washout: int, device: torch.device | str = "cpu"
                    ) -> dict[str, float]:
    """Test MSE (t ≥ washout), R² per output and mean/min, and the differentiation indices
    on the fixed test set `test` (a SeparationBatch)."""
    with torch.no_grad():
        h, y = model(torch.from_numpy(test.inputs).to(device)[None])
    h, y = h[0].cpu().numpy(), y[0].cpu().numpy()
    r2 = analysis.r_squared(test.targets, y)
    return {
        "test_mse": float(((y[:, washout:] - test.targets[:, washout:]) ** 2).mean()),
        "r2_mean": float(r2.mean()), "r2_min": float(r2.min()),
        **{f"r2_{k}": float(v) for k, v in enumerate(r2)},
        **analysis.separation_indices(model.weight_out[0].detach().cpu().numpy(),
                                      model.recurrent_block("h").detach().cpu().numpy(),
                                      h, y, washout),
    }


def pretrain(state: CohortState) -> None:
    """The critic's pre-training: `n_sm_pretrain` SM steps on random batches."""
    config = state.config
    t = config.training
    chunk = max(t.n_sm_steps, 1)
    for start in range(0, t.n_sm_pretrain, chunk):
        critic_phase(state, config, min(chunk, t.n_sm_pretrain - start))


def epoch(state: CohortState) -> list[dict[str, float]]:
    """`n_mm_steps` × (SM phase, MM step), then the test evaluation; the logged loss, MSE,
    L2 and Î are means over the epoch's steps (one dict: the cohort is one run)."""
    config = state.config
    t = config.training
    steps = []
    for _ in range(t.n_mm_steps):
        mi = critic_phase(state, config, t.n_sm_steps) if t.n_sm_steps else float("nan")
        steps.append({**model_step(state, config), "mi": mi})
    logged = {key: float(np.mean([s[key] for s in steps])) for key in steps[0]}
    return [{**logged, **test_evaluation(state.model, state.data["test"], config.task.washout,
                                         state.device)}]


SEPARATION_LOOP = Loop(task="separation", history_keys=HISTORY_KEYS, init=init_separation,
                       pretrain=pretrain, epoch=epoch, postfix=("loss", "r2_mean", "mi"),
                       max_runs=1)


def train_separation(config: RunConfig, seed: int, root: Path | None = None,
                     progress: bool = True, stop_after: int | None = None,
                     on_epoch: Callable[[CohortState], None] | None = None,
                     device: str = "cpu") -> store.RunRecord | None:
    """Train (or resume) one separation run; see `runs.train_run`."""
    return train_run(SEPARATION_LOOP, config, seed, root, progress, stop_after, on_epoch,
                     device)
