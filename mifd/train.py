"""The alternating training of the working-memory RNN and its statistics network (SPEC §5.1).

One epoch: `n_sm_steps` critic (SM) steps, each on a fresh batch started from x0 = 0, that
maximise the MINE estimate Î between the two groups' rates; then one model (MM) step, on a
fresh batch started from x0 ~ N(0, I), that minimises

    MSE + c_reg (‖W_rec‖² + ‖W_out‖²) + c_reg_in ‖W_in‖² + λ Î.

With λ = 0 (the control) everything else is identical and Î is only observed. A run is
checkpointed at every snapshot and resumes to the same history as an uninterrupted run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from . import store
from .config import RunConfig
from .mine import MineEstimator, critic_step, make_critic_optimizer
from .models import LeakyRNN, split_groups
from .optim import clip_per_tensor_norm, make_optimizer
from .tasks import wm_batch

HISTORY_KEYS = (
    "mse", "accuracy", "accuracy_bit1", "accuracy_bit2", "mi_before", "mi_after", "l2",
    "loss", "grad_norm",
)


@dataclass
class WMState:
    """Everything a working-memory run carries from one epoch to the next."""

    model: LeakyRNN
    estimator: MineEstimator
    model_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    generator: torch.Generator
    rng: np.random.Generator
    epoch: int = 0
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    snapshots: dict[str, list[np.ndarray]] = field(default_factory=dict)
    snapshot_epochs: list[int] = field(default_factory=list)
    seconds: float = 0.0
    commit: str = ""
    sittings: list[int] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return self.generator.device


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


def init_wm(config: RunConfig, seed: int, device: str = "cpu") -> WMState:
    """Model, statistics network, optimisers and random streams of a fresh run.

    The parameters are drawn on the CPU from `seed` whatever the device, so a run starts
    from the same network everywhere; the training draws (noise, permutations) then come
    from a generator on `device`, so CUDA runs follow a different random stream than CPU
    runs (and differ from them beyond float rounding).
    """
    device = resolve_device(device)
    generator = torch.Generator().manual_seed(seed)
    model = LeakyRNN(config.model, generator=generator).to(device)
    half = config.model.n_units // 2
    estimator = MineEstimator(half, half, config.estimator, generator=generator).to(device)
    if device.type != "cpu":
        generator = torch.Generator(device).manual_seed(seed)
    t = config.training
    model_opt = make_optimizer(model.parameters(), t.optimizer, t.lr, t.eps, rho=t.rho,
                               eps_inside_sqrt=t.rmsprop_eps_inside_sqrt)
    critic_opt = make_critic_optimizer(estimator, config.estimator)
    return WMState(model, estimator, model_opt, critic_opt, generator,
                   np.random.default_rng(seed))


def _segment(state: WMState, config: RunConfig, x0_normal: bool, grad: bool,
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


def critic_phase(state: WMState, config: RunConfig, n_steps: int, x0_normal: bool
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


def model_phase_step(state: WMState, config: RunConfig) -> dict[str, float]:
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


def snapshot(state: WMState) -> None:
    """Record all model parameters at the current epoch."""
    for name, p in state.model.named_parameters():
        state.snapshots.setdefault(name, []).append(p.detach().cpu().numpy().copy())
    state.snapshot_epochs.append(state.epoch)


# --- checkpoints -------------------------------------------------------------------------

def _checkpoint(state: WMState) -> dict[str, Any]:
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


def save_checkpoint(state: WMState, path: Path) -> None:
    """Atomically write the run's full state (tensors and plain containers only)."""
    import io

    buffer = io.BytesIO()
    torch.save(_checkpoint(state), buffer)
    store.atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(state: WMState, path: Path) -> None:
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
    state.snapshots = {k: [t.numpy() for t in v] for k, v in data["snapshots"].items()}
    state.snapshot_epochs = list(data["snapshot_epochs"])
    state.seconds = data["seconds"]
    state.commit = data["commit"]
    state.sittings = list(data.get("sittings", []))


# --- the run -----------------------------------------------------------------------------

def train_wm(
    config: RunConfig,
    seed: int,
    root: Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    on_epoch: Callable[[WMState], None] | None = None,
    device: str = "cpu",
) -> store.RunRecord | None:
    """Train (or resume) one working-memory run on `device` and store its record under `root`.

    Returns the stored record, or the existing one if it is already complete. `stop_after`
    ends the sitting after that many epochs of this call (the checkpoint stays; the next
    call resumes) and then returns None. A non-finite loss stops the run with RunFailed
    and a `failure.json` in its directory; a run with a recorded failure is not retried
    until that directory is deleted.
    """
    if config.task_name != "wm":
        raise ValueError(f"train_wm needs a 'wm' config, got task {config.task_name!r}")
    directory = store.run_dir(config, seed, root)
    if store.is_complete(directory):
        return store.load_record(directory)
    failure = store.read_failure(directory)
    if failure is not None:
        raise RunFailed(f"{directory}: failed earlier ({failure['reason']}); delete the "
                        "directory to try again")
    checkpoint = directory / store.CHECKPOINT
    state = init_wm(config, seed, device)
    t = config.training
    if checkpoint.exists():
        load_checkpoint(state, checkpoint)
    else:
        state.commit = store.git_commit()
        started = time.perf_counter()
        for start in range(0, t.n_sm_pretrain, max(t.n_sm_steps, 1)):
            critic_phase(state, config, min(max(t.n_sm_steps, 1), t.n_sm_pretrain - start),
                         x0_normal=True)
        state.seconds += time.perf_counter() - started
        snapshot(state)
        save_checkpoint(state, checkpoint)
    state.sittings.append(state.epoch)
    bar = tqdm(total=t.epochs, initial=state.epoch, disable=not progress,
               desc=f"wm seed {seed} λ={t.lambda_mi:g}", unit="epoch")
    done_this_call = 0
    while state.epoch < t.epochs:
        if stop_after is not None and done_this_call >= stop_after:
            bar.close()
            return None
        started = time.perf_counter()
        mi_values = critic_phase(state, config, t.n_sm_steps, x0_normal=False)
        mi_before = mi_values[-1] if mi_values else float("nan")
        logged = model_phase_step(state, config)
        logged["mi_before"] = mi_before
        for key in HISTORY_KEYS:
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
        bar.set_postfix(loss=f"{logged['loss']:.3f}", acc=f"{logged['accuracy']:.3f}",
                        mi=f"{logged['mi_after']:.3f}")
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
