"""Replay stored parameters on fresh batches: the only place analyses meet a model.

Returns plain numpy arrays (activity, outputs, targets) for `mifd.analysis` and
`mifd.figures`; nothing here is trained.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import files, store
from .analysis import wm_indices
from .config import RunConfig
from .models import GRU_LEGACY_NAMES, GRUNet, LeakyRNN
from .tasks import cache_dir, held_out_indices, separation_batch, wm_batch


@dataclass(frozen=True)
class WMReplay:
    """A fresh working-memory batch run through stored parameters, over all T steps.

    inputs (B, T, 4), targets (B, T, 2), x: pre-activation states (B, T, N), z: outputs
    (B, T, 2); T = n_transient + n_learn, the first n_transient steps being the transient.
    """

    inputs: np.ndarray
    targets: np.ndarray
    x: np.ndarray
    z: np.ndarray


def stored_model(config: RunConfig, parameters: dict[str, np.ndarray]) -> LeakyRNN | GRUNet:
    """The configuration's model holding `parameters` ({name: array}, e.g. one snapshot of a
    record): a LeakyRNN or GRUNet of one run (the stored arrays gain the run axis; older
    separation records' names are read through `GRU_LEGACY_NAMES`)."""
    model: LeakyRNN | GRUNet
    if config.model.kind == "leaky_rnn":
        model = LeakyRNN(config.model)
    else:
        model = GRUNet(config.model)
        parameters = {GRU_LEGACY_NAMES.get(k, k): v for k, v in parameters.items()}
    parameters = {k: np.asarray(v)[None] for k, v in parameters.items()}
    model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in parameters.items()})
    return model


def replay_wm(config: RunConfig, parameters: dict[str, np.ndarray], seed: int,
              batch_size: int | None = None) -> WMReplay:
    """Run a fresh batch (x0 ~ N(0, I), noise on, as in SPEC §6.2) through `parameters`."""
    task = (config if batch_size is None
            else config.replace(**{"task.batch_size": batch_size})).wm_task
    batch = wm_batch(task, np.random.default_rng(seed))
    generator = torch.Generator().manual_seed(seed)
    model = stored_model(config, parameters)
    inputs = torch.from_numpy(batch.inputs)
    x0 = torch.randn((task.batch_size, config.model.n_units), generator=generator)
    noise = torch.randn((*inputs.shape[:2], config.model.n_units), generator=generator)
    with torch.no_grad():
        x, z = model(inputs[None], x0[None], noise[None])
    return WMReplay(batch.inputs, batch.targets, x[0].numpy(), z[0].numpy())


def final_parameters(snapshots: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The last snapshot of each parameter: {name: array}."""
    return {name: values[-1] for name, values in snapshots.items()}


# The parameters the authors' runner leaves out of its snapshots (SPEC §5.1 snapshot quirk).
UNSNAPSHOTTED_BIASES = ("b", "b_out")


def index_courses(record, seed: int, batch_size: int | None = None,
                  legacy_bias_restore: bool = False) -> pd.DataFrame:
    """Every differentiation index at every snapshot of a run (SPEC §6.7).

    Each snapshot is restored and run on a fresh batch drawn from `seed` (the same batch
    for every snapshot, so the courses differ only through the parameters). With
    `legacy_bias_restore` every snapshot runs with the *final* biases b and b_out, as the
    authors' analysis does (their snapshots omit them); only the correlation-based indices
    can change. Returns one row per snapshot: "seed", "lambda_mi", "epoch" and the columns
    of `analysis.wm_indices`.

    Chapters 3 and 4 and the results page read the same runs in separate kernels, so the rows
    are kept under `courses_path` (per record, arguments and version of this package's code)
    and computed once.
    """
    target = courses_path(record, seed, batch_size, legacy_bias_restore)
    if target.exists():
        return pd.DataFrame(json.loads(target.read_text()))
    final = final_parameters(record.snapshots)
    rows = []
    for k, epoch in enumerate(record.snapshot_epochs):
        parameters = {name: final[name] if legacy_bias_restore and name in UNSNAPSHOTTED_BIASES
                      else values[k] for name, values in record.snapshots.items()}
        replay = replay_wm(record.config, parameters, seed, batch_size)
        rows.append({"seed": record.seed, "lambda_mi": record.config.training.lambda_mi,
                     "epoch": int(epoch),
                     **wm_indices(parameters, replay.x, replay.targets,
                                  record.config.task.n_transient)})
    files.atomic_write_bytes(target, json.dumps(rows).encode())  # floats round-trip exactly
    return pd.DataFrame(rows)


def package_imports(module: Path) -> set[str]:
    """The names of this package's modules that `module` imports (`from . import a, b` and
    `from .a import x`), read from its source."""
    names: set[str] = set()
    for line in module.read_text().splitlines():
        if found := re.match(r"from \.(\w*) import (.+)", line.strip()):
            names.update([found[1]] if found[1] else
                         (n.strip(" ()").split(" as ")[0] for n in found[2].split(",")))
    return {n for n in names if (module.parent / f"{n}.py").exists()}


@functools.cache
def code_version() -> str:
    """A digest of the source of this module and of every package module it imports, directly
    or through others: a change to the code that computes the indices gives a new one; a change
    to claims, evidence, figures or the chapters keeps the cached courses."""
    here = Path(__file__)
    seen, todo = set(), [here.stem]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(package_imports(here.parent / f"{name}.py"))
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode() + (here.parent / f"{name}.py").read_bytes())
    return digest.hexdigest()


def courses_path(record, seed: int, batch_size: int | None, legacy_bias_restore: bool) -> Path:
    """Where `index_courses` keeps a record's rows: under `tasks.cache_dir()`, named by the
    record's manifest (the checksums of its files), the arguments and `code_version`."""
    manifest = (Path(record.path) / store.MANIFEST).read_text()
    key = json.dumps([manifest, seed, batch_size, legacy_bias_restore, code_version()])
    return cache_dir() / "index-courses" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


@dataclass(frozen=True)
class SeparationReplay:
    """The fixed test set run through stored parameters: inputs (B, T, 3), targets (B, T, 6),
    hidden states h (B, T, N) and outputs y (B, T, 6)."""

    inputs: np.ndarray
    targets: np.ndarray
    h: np.ndarray
    y: np.ndarray


def replay_separation(config: RunConfig, parameters: dict[str, np.ndarray]) -> SeparationReplay:
    """Run the configuration's fixed test set (generated or read from the cache) through
    `parameters`, from h₀ = 0 as in training."""
    task = config.separation_task
    test = separation_batch(held_out_indices(task), task)
    with torch.no_grad():
        h, y = stored_model(config, parameters)(torch.from_numpy(test.inputs)[None])
    return SeparationReplay(test.inputs, test.targets, h[0].numpy(), y[0].numpy())


def final_indices(record, seed: int) -> dict[str, float]:
    """The differentiation indices (`analysis.wm_indices`) of a working-memory run's final
    parameters, on a fresh batch drawn from `seed`."""
    parameters = final_parameters(record.snapshots)
    replay = replay_wm(record.config, parameters, seed)
    return wm_indices(parameters, replay.x, replay.targets, record.config.task.n_transient)


VARIANT_COLUMNS = ("accuracy", "mi_recent", "Q_corr", "Q_str", "D_corr", "D_out")


def paired_variants(baseline, variant, seed: int, columns=VARIANT_COLUMNS
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs of the same seeds trained two ways (e.g. another RMSprop ε placement or critic
    precision), compared seed by seed on their final values and indices.

    baseline, variant: lists of working-memory records; only seeds present in both count.
    Returns (table, summary): `table` has a row per seed and a (column, "baseline" |
    "variant") pair of columns per quantity; `summary` has a row per quantity: the paired
    differences (variant − baseline) as mean, smallest, largest and the number of seeds where
    the variant is larger, the sd over seeds of the baseline, and "within spread", whether
    |mean difference| ≤ that sd.
    """
    from .analysis import final_values

    seeds = sorted({r.seed for r in baseline} & {r.seed for r in variant})
    if not seeds:
        return pd.DataFrame(), pd.DataFrame()
    frames = {}
    for name, runs in (("baseline", baseline), ("variant", variant)):
        runs = sorted((r for r in runs if r.seed in seeds), key=lambda r: r.seed)
        finals = final_values(runs).set_index("seed")
        indices = pd.DataFrame([final_indices(r, seed) for r in runs], index=finals.index)
        frames[name] = pd.concat([finals, indices], axis=1)[list(columns)]
    table = pd.concat(frames, axis=1).swaplevel(axis=1)[list(columns)]
    rows = []
    for name in columns:
        d = table[name]["variant"] - table[name]["baseline"]
        spread = table[name]["baseline"].std()
        rows.append({"quantity": name, "mean difference": d.mean(), "smallest": d.min(),
                     "largest": d.max(), "variant larger in": int((d > 0).sum()),
                     "seeds": len(d), "baseline sd": spread,
                     "within spread": bool(abs(d.mean()) <= spread)})
    return table, pd.DataFrame(rows).set_index("quantity")
