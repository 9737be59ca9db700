"""One training run, from its first epoch to its stored record, for any task.

A task supplies a `Loop`: how to build a fresh `RunState`, how to pre-train the critic, and
what one epoch does. `train_run` does the rest, identically for every task: resume from
the run's checkpoint, log each epoch, snapshot and checkpoint at the configured stride,
stop with a recorded failure on a non-finite loss, and store the record (see `store`).
A run killed at any point resumes to the history of an uninterrupted run.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from . import store
from .config import RunConfig


@dataclass
class RunState:
    """Everything a run carries from one epoch to the next.

    history: {name: [value per epoch]}; snapshots: {parameter: [array per snapshot]};
    seconds: training wall time so far; commit: the code's commit when the run started;
    sittings: the epoch at which each call of `train_run` on this run began; data: inputs
    the task keeps at hand (e.g. a training pool), never checkpointed.
    """

    model: nn.Module
    estimator: nn.Module
    model_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    generator: torch.Generator
    rng: np.random.Generator
    epoch: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    snapshots: dict[str, list[np.ndarray]] = field(default_factory=dict)
    snapshot_epochs: list[int] = field(default_factory=list)
    seconds: float = 0.0
    commit: str = ""
    sittings: list[int] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.generator.device


@dataclass(frozen=True)
class Loop:
    """What a task's training does: `init(config, seed, device)` → a fresh RunState;
    `pretrain(state, config)`: the critic's pre-training; `epoch(state, config)` → the
    epoch's logged values, which include every name in `history_keys` and "loss";
    `postfix`: the logged names the progress bar shows."""

    task: str
    history_keys: tuple[str, ...]
    init: Callable[[RunConfig, int, str], RunState]
    pretrain: Callable[[RunState, RunConfig], None]
    epoch: Callable[[RunState, RunConfig], dict[str, float]]
    postfix: tuple[str, ...]


class RunFailed(FloatingPointError):
    """The run diverged (non-finite loss); its failure is recorded in the run directory."""


def resolve_device(name: str) -> torch.device:
    """The torch device for `name` ("cpu", "cuda", "cuda:1"); ValueError when it cannot be used."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: unknown device {name!r}; use 'cpu' or 'cuda'") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device: {name!r} is not supported; use 'cpu' or 'cuda'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} requested, but torch sees no CUDA GPU here")
    return device


def build_networks(config: RunConfig, seed: int, device: str, model_class: type[nn.Module]
                   ) -> tuple[nn.Module, nn.Module, torch.Generator]:
    """The task's model and its MINE statistics network for a fresh run, and the run's
    generator.

    The parameters are drawn on the CPU from `seed` whatever the device, so a run starts
    from the same networks everywhere; the training draws (noise, permutations) then come
    from a generator on `device`, so CUDA runs follow a different random stream than CPU
    runs (and differ from them beyond float rounding).
    """
    from .mine import MineEstimator

    device = resolve_device(device)
    generator = torch.Generator().manual_seed(seed)
    model = model_class(config.model, generator=generator).to(device)
    half = config.model.n_units // 2
    estimator = MineEstimator(half, half, config.estimator, generator=generator).to(device)
    if device.type != "cpu":
        generator = torch.Generator(device).manual_seed(seed)
    return model, estimator, generator


def snapshot(state: RunState) -> None:
    """Record all model parameters at the current epoch."""
    for name, p in state.model.named_parameters():
        state.snapshots.setdefault(name, []).append(p.detach().cpu().numpy().copy())
    state.snapshot_epochs.append(state.epoch)


# --- checkpoints -------------------------------------------------------------------------

def _checkpoint(state: RunState) -> dict[str, Any]:
    return {
        "epoch": state.epoch,
        "model": state.model.state_dict(),
        "estimator": state.estimator.state_dict(),
        "model_opt": state.model_opt.state_dict(),
        "critic_opt": state.critic_opt.state_dict(),
        "generator": state.generator.get_state(),
        "rng": state.rng.bit_generator.state,
        "history": state.history,
        "snapshots": {k: [torch.from_numpy(a) for a in v] for k, v in state.snapshots.items()},
        "snapshot_epochs": state.snapshot_epochs,
        "seconds": state.seconds,
        "commit": state.commit,
        "sittings": state.sittings,
    }


def save_checkpoint(state: RunState, path: Path) -> None:
    """Atomically write the run's full state (tensors and plain containers only)."""
    buffer = io.BytesIO()
    torch.save(_checkpoint(state), buffer)
    store.atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(state: RunState, path: Path) -> None:
    """Restore a state saved by `save_checkpoint` (weights_only: no arbitrary pickles)."""
    try:
        data = torch.load(path, weights_only=True, map_location=state.device)
    except Exception as error:  # an unpickling refusal or a damaged file: never run on it
        raise store.RecordError(
            f"{path}: not a loadable mifd checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0]}); delete it to restart the run") from None
    state.epoch = data["epoch"]
    state.model.load_state_dict(data["model"])
    state.estimator.load_state_dict(data["estimator"])
    state.model_opt.load_state_dict(data["model_opt"])
    state.critic_opt.load_state_dict(data["critic_opt"])
    state.generator.set_state(data["generator"].cpu())
    state.rng.bit_generator.state = data["rng"]
    state.history = data["history"]
    state.snapshots = {k: [t.cpu().numpy() for t in v] for k, v in data["snapshots"].items()}
    state.snapshot_epochs = list(data["snapshot_epochs"])
    state.seconds = data["seconds"]
    state.commit = data["commit"]
    state.sittings = list(data.get("sittings", []))


# --- the run -----------------------------------------------------------------------------

def train_run(
    loop: Loop,
    config: RunConfig,
    seed: int,
    root: Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    on_epoch: Callable[[RunState], None] | None = None,
    device: str = "cpu",
) -> store.RunRecord | None:
    """Train (or resume) one run of `loop`'s task on `device`; store its record under `root`.

    Returns the stored record, or the existing one if it is already complete. `stop_after`
    ends the sitting after that many epochs of this call (the checkpoint stays; the next
    call resumes) and then returns None. A non-finite loss stops the run with RunFailed
    and a `failure.json` in its directory; a run with a recorded failure is not retried
    until that directory is deleted.
    """
    if config.task_name != loop.task:
        raise ValueError(f"this trainer needs a {loop.task!r} config, got task "
                         f"{config.task_name!r}")
    directory = store.run_dir(config, seed, root)
    if store.is_complete(directory):
        return store.load_record(directory)
    failure = store.read_failure(directory)
    if failure is not None:
        raise RunFailed(f"{directory}: failed earlier ({failure['reason']}); delete the "
                        "directory to try again")
    checkpoint = directory / store.CHECKPOINT
    state = loop.init(config, seed, device)
    t = config.training
    if checkpoint.exists():
        load_checkpoint(state, checkpoint)
    else:
        state.commit = store.git_commit()
        started = time.perf_counter()
        loop.pretrain(state, config)
        state.seconds += time.perf_counter() - started
        snapshot(state)
        save_checkpoint(state, checkpoint)
    state.sittings.append(state.epoch)
    bar = tqdm(total=t.epochs, initial=state.epoch, disable=not progress, unit="epoch",
               desc=f"{loop.task} seed {seed} λ={t.lambda_mi:g}")
    done_this_call = 0
    while state.epoch < t.epochs:
        if stop_after is not None and done_this_call >= stop_after:
            bar.close()
            return None
        started = time.perf_counter()
        logged = loop.epoch(state, config)
        for key in loop.history_keys:
            state.history[key].append(logged[key])
        state.epoch += 1
        state.seconds += time.perf_counter() - started
        done_this_call += 1
        if not np.isfinite(logged["loss"]):
            bar.close()
            reason = f"the loss became {logged['loss']} at epoch {state.epoch}"
            store.record_failure(directory, {"reason": reason, "epoch": state.epoch,
                                             "logged": logged, "config": config.to_dict()})
            raise RunFailed(f"{directory}: {reason}; the run stopped and its failure is "
                            f"recorded in {store.FAILURE}")
        if state.epoch % t.snapshot_every == 0 or state.epoch == t.epochs:
            snapshot(state)
            save_checkpoint(state, checkpoint)
        bar.set_postfix({key: f"{logged[key]:.3f}" for key in loop.postfix})
        bar.update()
        if on_epoch is not None:
            on_epoch(state)
    bar.close()
    record_dir = store.save_record(
        config, seed, state.history,
        {k: np.stack(v) for k, v in state.snapshots.items()},
        np.asarray(state.snapshot_epochs),
        store.provenance({"git_commit": state.commit, "train_seconds": state.seconds,
                          "seconds_per_epoch": state.seconds / max(t.epochs, 1),
                          "device": str(state.device), "sittings": state.sittings}),
        root,
    )
    checkpoint.unlink(missing_ok=True)
    return store.load_record(record_dir)
