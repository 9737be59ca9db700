"""Training runs, from their first epoch to their stored records, as cohorts (any task).

A *cohort* is a set of runs that share every setting but the per-run ones
(`config.PER_RUN_FIELDS`, e.g. λ) and the seed; it trains as one computation with a
leading run axis on every parameter (ARCHITECTURE.md, Cohorts). A single run is a cohort of
one: the same code.

A task supplies a `Loop`: how to build a fresh `CohortState`, how to pre-train the critics,
and what one epoch does for every run. `train_cohort` does the rest, identically for every
task: resume from the cohort's checkpoint, log each run's epoch, snapshot and checkpoint at
the configured stride, record a run whose loss turns non-finite as failed and drop it from
the cohort (the others go on), and store one record per run (see `store`). A cohort
killed at any point resumes to the histories of an uninterrupted one.
"""
from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from . import files, store
from .config import RunConfig

if TYPE_CHECKING:
    from .mine import MineEstimator

ModelT = TypeVar("ModelT", bound=nn.Module)  # the task's RNN: models.LeakyRNN or gru.GRUNet


@dataclass
class Member:
    """One run of a cohort: its configuration, seed, random streams and everything it records.

    history: {name: [value per epoch]}; snapshots: {parameter: [array per snapshot]};
    seconds: this run's share of the cohort's training wall time so far; cpu_seconds: its
    share of the training process's CPU time (all threads; one cohort per process, as `mifd
    train`, `mifd sweep`'s workers and dask workers with `--nthreads 1` run them), which a
    paused or crowded process does not inflate, or None when a checkpoint of a version that
    did not count it was resumed; commit: the code's commit when the cohort started;
    sittings: the epoch at which each call of `train_cohort` began.
    """

    config: RunConfig
    seed: int
    generator: torch.Generator
    rng: np.random.Generator
    history: dict[str, list[float]] = field(default_factory=dict)
    snapshots: dict[str, list[np.ndarray]] = field(default_factory=dict)
    snapshot_epochs: list[int] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float | None = 0.0
    commit: str = ""
    sittings: list[int] = field(default_factory=list)

    @property
    def directory_key(self) -> tuple[str, int]:
        return self.config.config_hash(), self.seed


@dataclass
class CohortState(Generic[ModelT]):
    """Everything a cohort carries from one epoch to the next: networks with a leading run
    axis of length R = len(members), their optimisers, the members (one per run, in run-axis
    order), the epoch all of them are at, and `data`, inputs the task keeps at hand (e.g. a
    training pool), never checkpointed."""

    model: ModelT
    estimator: MineEstimator
    model_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    members: list[Member]
    epoch: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    cohort: dict[str, Any] = field(default_factory=dict)  # `store.cohort_statement` of the
    # runs that started training together (runs that fail later leave `members`, not this)

    @property
    def config(self) -> RunConfig:
        """The shared settings (the first run's configuration; per-run fields differ)."""
        return self.members[0].config

    @property
    def device(self) -> torch.device:
        return self.members[0].generator.device

    @property
    def generators(self) -> list[torch.Generator]:
        return [m.generator for m in self.members]

    def per_run(self, dotted: str) -> torch.Tensor:
        """A per-run setting ("training.lambda_mi") as an (R,) float32 tensor on the device."""
        section, name = dotted.split(".")
        return torch.tensor([getattr(getattr(m.config, section), name) for m in self.members],
                            dtype=torch.float32, device=self.device)

    def keep(self, indices: Sequence[int]) -> None:
        """Drop every run not in `indices` (positions on the run axis) from the networks,
        the optimisers' state and the members."""
        if list(indices) == list(range(len(self.members))):
            return
        if not indices:
            raise ValueError("keep: a cohort keeps at least one run")
        index = torch.as_tensor(list(indices), dtype=torch.long, device=self.device)
        with torch.no_grad():
            for optimizer, module in ((self.model_opt, self.model),
                                      (self.critic_opt, self.estimator)):
                for p in module.parameters():
                    p.data = p.data.index_select(0, index)
                    p.grad = None
                    state = optimizer.state.get(p, {})
                    for key, value in state.items():
                        if torch.is_tensor(value) and value.dim() and value.shape[0] == len(self.members):
                            state[key] = value.index_select(0, index)
        self.members = [self.members[i] for i in indices]
        self.data.pop("arrays", None)  # `reused_array`s of the old run count


@dataclass(frozen=True)
class Loop:
    """What a task's training does: `init(configs, seeds, device)` → a fresh CohortState;
    `pretrain(state)`: the critics' pre-training; `epoch(state)` → one dict of logged values
    per run, each holding every name in `history_keys` and "loss"; `postfix`: the logged
    names the progress bar shows; `summary(history)`: the final task score and Î a sweep's
    table shows for a run, `score`: the key of that score in it and its name in a sentence;
    `bytes_per_run(config)`: an upper estimate of the memory one run adds to a cohort;
    `description`: the task's name in a sentence."""

    task: str
    description: str
    history_keys: tuple[str, ...]
    init: Callable[[list[RunConfig], list[int], str], CohortState]
    pretrain: Callable[[CohortState], None]
    epoch: Callable[[CohortState], list[dict[str, float]]]
    postfix: tuple[str, ...]
    summary: Callable[[dict], dict[str, float]]
    score: tuple[str, str]
    bytes_per_run: Callable[[RunConfig], int]


def critic_bytes(rows: float, hidden: int) -> float:
    """Floats of the critic's workspace for `rows` sample rows of width `hidden` (joint and
    marginal, activations and gradients, twice for the model step's own estimator call)."""
    return 2 * 4 * 2 * rows * hidden


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


def gpu_name(device: torch.device) -> dict[str, str]:
    """{"gpu": the GPU's name and CUDA version} for a CUDA device, {} for the CPU: what a
    record trained on a GPU says beside its device."""
    if device.type != "cuda":
        return {}
    return {"gpu": f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"}


def check_cohort(configs: Sequence[RunConfig], seeds: Sequence[int]) -> None:
    """ValueError unless the runs can train as one cohort: the same settings but the per-run
    fields, and no (configuration, seed) twice."""
    if not configs or len(configs) != len(seeds):
        raise ValueError("a cohort needs one configuration per seed, and at least one run")
    key = configs[0].cohort_key()
    if any(c.cohort_key() != key for c in configs):
        raise ValueError("the runs of a cohort must share every setting but "
                         + ", ".join(RunConfig.per_run_fields()))
    pairs = [(c.config_hash(), s) for c, s in zip(configs, seeds)]
    if len(set(pairs)) != len(pairs):
        raise ValueError("a cohort lists the same run twice")


def build_networks(configs: Sequence[RunConfig], seeds: Sequence[int], device: str,
                   model_class: type[ModelT]) -> tuple[ModelT, MineEstimator, list[Member]]:
    """The task's models and MINE statistics networks for a fresh cohort (run axis first),
    and its members with their random streams.

    Each run's parameters are drawn on the CPU from its own seed (the model's, then the
    critic's) whatever the device, so a run starts from the same networks everywhere and in
    any cohort; the training draws (noise, permutations) then come from a generator on
    `device`, so CUDA runs follow a different random stream than CPU runs (and differ from
    them beyond float rounding).
    """
    from .mine import MineEstimator, check_precision

    torch_device = resolve_device(device)
    config = configs[0]
    check_precision(config.estimator, torch_device)
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    model = model_class(config.model, generators=generators).to(torch_device)
    half = config.model.n_units // 2
    estimator = MineEstimator(half, half, config.estimator, generators=generators).to(torch_device)
    if torch_device.type != "cpu":
        generators = [torch.Generator(torch_device).manual_seed(seed) for seed in seeds]
    members = [Member(c, s, g, np.random.default_rng(s)) for c, s, g in zip(configs, seeds,
                                                                          generators)]
    return model, estimator, members


def snapshot(state: CohortState) -> None:
    """Record every run's model parameters at the current epoch."""
    arrays = {name: p.detach().cpu().numpy() for name, p in state.model.named_parameters()}
    for r, member in enumerate(state.members):
        for name, values in arrays.items():
            member.snapshots.setdefault(name, []).append(values[r].copy())
        member.snapshot_epochs.append(state.epoch)


def draw_normal(first: list[torch.Tensor], second: list[torch.Tensor],
                 generators: list[torch.Generator]) -> None:
    """Fill first[r] and then second[r] with standard-normal draws from generators[r] (either
    list may be empty), each run's draws in its own order; on a CPU the runs are spread
    over the torch threads (one generator's draws are sequential, different runs' are
    independent, and each thread draws ≈1.6× faster than one alone)."""
    def fill(r: int) -> None:
        for arrays in (first, second):
            if arrays:
                arrays[r].normal_(generator=generators[r])

    workers = min(torch.get_num_threads(), len(generators))
    if workers < 2 or generators[0].device.type != "cpu":
        for r in range(len(generators)):
            fill(r)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fill, range(len(generators))))


def l1_penalty(state: CohortState, w_rec: torch.Tensor) -> torch.Tensor:
    """c_L1,r · ‖W_rec,r‖₁ for every run r, (R,): the sparsity penalty on the recurrent
    weights w_rec (R, …) with each run's `training.c_l1` (zero by default; mifd only)."""
    return state.per_run("training.c_l1") * w_rec.abs().flatten(1).sum(1)


def mi_penalty(state: CohortState, g1: torch.Tensor, g2: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The model step's MI term for every run: Î_r on the groups g1, g2 (R, …, N/2) with the
    critics frozen, and λ_r·Î_r, zero where λ_r = 0, so a control's loss and gradient get
    nothing from the critic while every run still draws its estimator samples. Î carries
    gradient to the activity only when some λ_r > 0. Returns (Î, λ·Î), each (R,)."""
    lambdas = state.per_run("training.lambda_mi")
    for p in state.estimator.parameters():
        p.requires_grad_(False)
    try:
        if bool((lambdas > 0).any()):
            mi = state.estimator(g1, g2, state.generators)
            return mi, torch.where(lambdas > 0, lambdas * mi, 0.0)
        with torch.no_grad():
            mi = state.estimator(g1, g2, state.generators)
        return mi, torch.zeros_like(mi)
    finally:
        for p in state.estimator.parameters():
            p.requires_grad_(True)


def reused_array(state: CohortState, shape: tuple[int, ...]) -> torch.Tensor:
    """A float32 array of `shape` on the cohort's device, kept in `state.data` and handed out
    again at the next call with the same shape (its contents are overwritten by the caller:
    fresh arrays of this size cost more to fault into memory than filling them)."""
    arrays = state.data.setdefault("arrays", {})
    if shape not in arrays:
        arrays[shape] = torch.empty(shape, device=state.device)
    return arrays[shape]


# --- checkpoints -------------------------------------------------------------------------

_MEMBER_FIELDS = ("history", "snapshot_epochs", "seconds", "cpu_seconds", "commit", "sittings")


def _checkpoint(state: CohortState) -> dict[str, Any]:
    return {
        "epoch": state.epoch,
        "model": state.model.state_dict(),
        "estimator": state.estimator.state_dict(),
        "model_opt": state.model_opt.state_dict(),
        "critic_opt": state.critic_opt.state_dict(),
        "cohort": state.cohort,
        "members": [{
            "config_hash": m.config.config_hash(), "seed": m.seed,
            "generator": m.generator.get_state(), "rng": m.rng.bit_generator.state,
            "snapshots": {k: [torch.from_numpy(a) for a in v] for k, v in m.snapshots.items()},
            **{name: getattr(m, name) for name in _MEMBER_FIELDS},
        } for m in state.members],
    }


def save_checkpoint(state: CohortState, path: Path) -> None:
    """Atomically write the cohort's full state (tensors and plain containers only)."""
    buffer = io.BytesIO()
    torch.save(_checkpoint(state), buffer)
    files.atomic_write_bytes(path, buffer.getvalue())


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint saved by `save_checkpoint` (weights_only: no arbitrary pickles); its
    "members" list the runs it holds, in run-axis order, as {"config_hash", "seed", ...}."""
    try:
        data = torch.load(path, weights_only=True, map_location=device)
        [(m["config_hash"], m["seed"]) for m in data["members"]]
    except Exception as error:  # an unpickling refusal or a damaged file: never run on it
        raise store.RecordError(
            f"{path}: not a loadable mifd checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0]}); delete it to restart the run") from None
    return data


def restore(state: CohortState, data: dict[str, Any]) -> None:
    """Load checkpoint `data` into `state`, a fresh cohort of exactly its runs."""
    state.epoch = data["epoch"]
    state.cohort = data.get("cohort") or {  # a checkpoint written before cohorts were named
        **store.cohort_statement([m.config for m in state.members],
                                 [m.seed for m in state.members]),
        "note": "read from a checkpoint that did not name its cohort: its runs at that time"}
    state.model.load_state_dict(data["model"])
    state.estimator.load_state_dict(data["estimator"])
    state.model_opt.load_state_dict(data["model_opt"])
    state.critic_opt.load_state_dict(data["critic_opt"])
    for member, saved in zip(state.members, data["members"], strict=True):
        member.generator.set_state(saved["generator"].cpu())
        member.rng.bit_generator.state = saved["rng"]
        member.snapshots = {k: [t.cpu().numpy() for t in v] for k, v in saved["snapshots"].items()}
        for name in _MEMBER_FIELDS:  # cpu_seconds: None from a checkpoint that lacks it
            setattr(member, name, saved[name] if name != "cpu_seconds" else saved.get(name))
        member.snapshot_epochs, member.sittings = (list(member.snapshot_epochs),
                                                   list(member.sittings))


# --- the cohort --------------------------------------------------------------------------

Outcome = store.RunRecord | str | None  # a record, the reason a run failed, or None (paused)


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _charge(members: list[Member], since: tuple[float, float]) -> None:
    """Add each member's equal share of the wall and process CPU time since `_clock()` gave
    `since` to its `seconds` and `cpu_seconds` (where it counts them)."""
    wall, cpu = (now - then for now, then in zip(_clock(), since))
    for member in members:
        member.seconds += wall / len(members)
        if member.cpu_seconds is not None:
            member.cpu_seconds += cpu / len(members)


def _fail(member: Member, root: Path | None, epoch: int, logged: dict[str, float]) -> str:
    """Record a diverged run's failure.json; returns the reason."""
    reason = f"the loss became {logged['loss']} at epoch {epoch}"
    directory = store.run_dir(member.config, member.seed, root)
    store.record_failure(directory, {"reason": reason, "epoch": epoch, "logged": logged,
                                     "config": member.config.to_dict()})
    return f"{directory}: {reason}; the run stopped and its failure is recorded in {store.FAILURE}"


def train_cohort(
    loop: Loop,
    configs: Sequence[RunConfig],
    seeds: Sequence[int],
    root: Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    on_epoch: Callable[[CohortState], None] | None = None,
    device: str = "cpu",
) -> list[Outcome]:
    """Train (or resume) the cohort of runs (configs[i], seeds[i]) on `device`; store each
    run's record under `root`.

    Returns one outcome per run, in the order given: its stored record (also when it was
    complete already), or the reason it failed (now, or recorded earlier: a run with a
    recorded failure is not retried until its directory is deleted). `stop_after` ends the
    sitting after that many epochs of this call (the checkpoint stays; the next call with
    the same runs resumes) and then returns None for the runs still training; None also
    marks a run that the resumed checkpoint does not hold (it trains once the cohort is done).
    The checkpoint is the cohort's (`store.cohort_checkpoint`), named by all the runs given.
    """
    configs, seeds = list(configs), list(seeds)
    check_cohort(configs, seeds)
    if any(c.task_name != loop.task for c in configs):
        raise ValueError(f"this trainer needs {loop.task!r} configs")
    outcomes: list[Outcome] = [None] * len(configs)
    todo = []
    for i, (config, seed) in enumerate(zip(configs, seeds)):
        directory = store.run_dir(config, seed, root)
        failure = store.read_failure(directory)
        if store.is_complete(directory):
            outcomes[i] = store.load_record(directory)
        elif failure is not None:
            outcomes[i] = (f"{directory}: failed earlier ({failure['reason']}); delete the "
                           "directory to try again")
        else:
            todo.append(i)
    if not todo:
        return outcomes
    checkpoint = store.cohort_checkpoint(configs, seeds, root)
    run_of = {(c.config_hash(), s): (c, s) for c, s in zip(configs, seeds)}
    pending = {(configs[i].config_hash(), seeds[i]): i for i in todo}
    if checkpoint.exists():
        data = read_checkpoint(checkpoint, resolve_device(device))
        saved = [(m["config_hash"], m["seed"]) for m in data["members"]]
        if not set(saved) <= set(run_of):
            raise store.RecordError(f"{checkpoint}: holds runs that are not in this cohort")
        state = loop.init([run_of[k][0] for k in saved], [run_of[k][1] for k in saved], device)
        try:
            restore(state, data)
        except (RuntimeError, KeyError) as error:  # written by an older layout of the networks
            raise store.RecordError(
                f"{checkpoint}: does not fit this version's networks ({type(error).__name__}: "
                f"{str(error).splitlines()[0]}); resume it with the commit that wrote it, or "
                "delete it to restart the run") from None
        del data
        # runs stored or failed since the checkpoint leave; runs it lacks wait for the next
        keep = [k for k, key in enumerate(saved) if key in pending]
        if keep:
            state.keep(keep)
        else:
            state.members = []
    else:
        state = loop.init([configs[i] for i in todo], [seeds[i] for i in todo], device)
        state.cohort = store.cohort_statement([configs[i] for i in todo], [seeds[i] for i in todo])
        commit = store.git_commit()
        since = _clock()
        loop.pretrain(state)
        _charge(state.members, since)
        for member in state.members:
            member.commit = commit
        snapshot(state)
        save_checkpoint(state, checkpoint)
    index_of = {m.directory_key: pending[m.directory_key] for m in state.members}
    epochs = state.config.training.epochs
    for member in state.members:
        member.sittings.append(state.epoch)
        for key in loop.history_keys:  # a name logged since the checkpoint was written
            member.history.setdefault(key, [float("nan")] * state.epoch)
    lambdas = sorted({m.config.training.lambda_mi for m in state.members})
    bar = tqdm(total=epochs, initial=state.epoch, disable=not progress, unit="epoch",
               desc=f"{loop.task} {len(state.members)} run(s) λ={','.join(f'{v:g}' for v in lambdas)}")
    done_this_call = 0
    while state.epoch < epochs and state.members:
        if stop_after is not None and done_this_call >= stop_after:
            bar.close()
            return outcomes
        since = _clock()
        logged = loop.epoch(state)
        _charge(state.members, since)
        state.epoch += 1
        done_this_call += 1
        for member, values in zip(state.members, logged):
            for key in loop.history_keys:
                member.history[key].append(values[key])
        finite = [k for k, values in enumerate(logged) if np.isfinite(values["loss"])]
        for k, values in enumerate(logged):
            if k not in finite:
                member = state.members[k]
                outcomes[index_of[member.directory_key]] = _fail(member, root, state.epoch,
                                                                 values)
        if not finite:
            state.members = []
        elif len(finite) < len(logged):
            state.keep(finite)
        if state.members and (state.epoch % state.config.training.snapshot_every == 0
                              or state.epoch == epochs):
            snapshot(state)
            save_checkpoint(state, checkpoint)
        if state.members:
            bar.set_postfix({key: f"{np.mean([v[key] for v in logged]):.3f}"
                             for key in loop.postfix})
        bar.update()
        if on_epoch is not None:
            on_epoch(state)
    bar.close()
    for member in state.members:
        store.save_record(
            member.config, member.seed, member.history,
            {k: np.stack(v) for k, v in member.snapshots.items()},
            np.asarray(member.snapshot_epochs),
            store.provenance({"git_commit": member.commit, "train_seconds": member.seconds,
                              "seconds_per_epoch": member.seconds / max(epochs, 1),
                              **({} if member.cpu_seconds is None
                                 else {"train_cpu_seconds": member.cpu_seconds}),
                              "device": str(state.device), **gpu_name(state.device),
                              "sittings": member.sittings,
                              "cohort": state.cohort,
                              "cohort_runs": len(state.cohort["members"])}),
            root,
        )
    for member in state.members:
        directory = store.run_dir(member.config, member.seed, root)
        outcomes[index_of[member.directory_key]] = store.load_record(directory)
    checkpoint.unlink(missing_ok=True)
    store.remove_empty_dirs(checkpoint.parent)
    return outcomes


def train_run(loop: Loop, config: RunConfig, seed: int, root: Path | None = None,
              progress: bool = True, stop_after: int | None = None,
              on_epoch: Callable[[CohortState], None] | None = None,
              device: str = "cpu") -> store.RunRecord | None:
    """Train (or resume) one run: a cohort of one. Returns its record, or None when
    `stop_after` paused it; a diverging run raises RunFailed (its failure recorded)."""
    outcome, = train_cohort(loop, [config], [seed], root, progress, stop_after, on_epoch, device)
    if isinstance(outcome, str):
        raise RunFailed(outcome)
    return outcome
