"""How hard the critic pushes (#35): the gradient that the MI term λ·Î sends into a stored
network, from a fresh critic that sees a given share of the rows.

For one snapshot of a working-memory record, the network is frozen, a new statistics
network of the record's settings — but for `estimator.sample_fraction` — is trained on it as
the SM phase trains (`STEPS` ascent steps on fresh batches from x₀ = 0, as many as a run's
pre-training), and then one model batch (x₀ ~ N(0, I)) gives the norms of ∇(λ·Î) and of
∇MSE with respect to the RNN's parameters (`train.step_gradients`). Comparing the share the `book` profile uses (0.1) with
all rows (the `paper` profile) says whether the smaller critic under-doses the constraint.
Nothing is trained in the record; measurements are stored as
`results/push/wm/<config hash>/seed-<seed>.json`, one row per (snapshot, share, critic seed).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import files, store, train
from .runs import CohortState

STEPS = 100  # the fresh critic's ascent steps before the gradient is taken


def frozen_state(record, epoch: int, config, critic_seed: int) -> CohortState:
    """A one-run training state of `config` whose network holds `record`'s snapshot at
    `epoch` and whose critic, optimisers and generators are fresh, drawn from `critic_seed`."""
    index = int(np.flatnonzero(record.snapshot_epochs == epoch)[0])
    state = train.init_wm(config, critic_seed)
    with torch.no_grad():
        for name, p in state.model.named_parameters():
            p.copy_(torch.as_tensor(record.snapshots[name][index])[None])
    return state


def measure(record, epoch: int, fraction: float, critic_seed: int, steps: int = STEPS) -> dict:
    """One measurement: the snapshot of `record` at `epoch`, a fresh critic on `fraction` of
    the rows drawn from `critic_seed` (its weights, batches, noise and permutations), trained
    `steps` steps; returns the epoch, share, seed, the critic's last training Î and the
    gradient norms of `train.step_gradients`."""
    config = record.config.replace(**{"estimator.sample_fraction": fraction})
    state = frozen_state(record, epoch, config, critic_seed)
    chunk = max(config.training.n_sm_steps, 1)
    trace = np.concatenate([train.critic_phase(state, min(chunk, steps - done), x0_normal=False)[:, 0]
                            for done in range(0, steps, chunk)])
    return {"epoch": epoch, "fraction": fraction, "critic_seed": critic_seed,
            "critic_mi_last": float(np.median(trace[-chunk:])),
            **train.step_gradients(state)[0]}


def path(record, root: Path | None = None) -> Path:
    base = store.RESULTS if root is None else Path(root)
    return base / "push" / "wm" / record.config.config_hash() / f"seed-{record.seed}.json"


def kept(file: Path, wanted: list[dict], compute: Callable[[dict], dict],
         compute_missing: bool, entries: str = "rows", indent: int | None = None) -> list[dict]:
    """Measurements kept in the JSON file `file` under `entries`, one per dict of `wanted`
    (the settings that name it, e.g. {"epoch": 500, "fraction": 0.1, ...}): those stored are
    read; the missing ones are computed (`compute(settings)` gives the measurement), stored
    with their settings, the seconds they took and the provenance, and the file rewritten
    atomically after each, when `compute_missing`, else left out. Returns the entries of
    `wanted` that are stored, in the file's order."""
    stored = json.loads(file.read_text()) if file.exists() else {entries: []}

    def found(settings: dict) -> bool:
        return any(all(e.get(k) == v for k, v in settings.items()) for e in stored[entries])

    for settings in wanted:
        if found(settings) or not compute_missing:
            continue
        clock = time.perf_counter()
        measured = compute(settings)
        stored[entries].append({**settings, **measured, "seconds": time.perf_counter() - clock})
        stored["provenance"] = store.provenance()
        files.atomic_write_bytes(file, (json.dumps(stored, indent=indent) + "\n").encode())
    return [e for e in stored[entries]
            if any(all(e.get(k) == v for k, v in w.items()) for w in wanted)]


def load_or_measure(record, epochs, fractions, critic_seeds, steps: int = STEPS,
                    compute_missing: bool = False, root: Path | None = None) -> pd.DataFrame:
    """The stored measurements of `record` for every (epoch, share, critic seed) asked for;
    missing ones are measured and stored when `compute_missing` (a few minutes each at all
    rows on one core), else left out. One row per measurement, with the record's seed."""
    wanted = [{"epoch": e, "fraction": f, "critic_seed": c, "steps": steps}
              for e in epochs for f in fractions for c in critic_seeds]
    rows = kept(path(record, root), wanted, lambda w: measure(
        record, w["epoch"], w["fraction"], w["critic_seed"], w["steps"]), compute_missing, indent=1)
    return pd.DataFrame(rows).assign(seed=record.seed) if rows else pd.DataFrame()


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (epoch, share of rows): the runs and critic seeds measured, and the mean ± sd over
    them of ‖∇(λ·Î)‖, ‖∇MSE‖, their ratio and the fresh critic's Î on the model batch."""
    rows = rows.assign(ratio=rows["mi"] / rows["task"])
    grouped = rows.groupby(["epoch", "fraction"])
    table = grouped.agg(measurements=("mi", "size"))
    for column, name in (("mi", "‖∇(λ·Î)‖"), ("task", "‖∇MSE‖"), ("ratio", "‖∇(λ·Î)‖ / ‖∇MSE‖"),
                         ("mi_estimate", "Î (nats)")):
        table[name] = grouped[column].agg(lambda v: f"{v.mean():.3g} ± {v.std(ddof=1):.2g}"
                                          if v.size > 1 else f"{v.mean():.3g}")
    return table.reset_index()


def share_ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """Per snapshot epoch: the mean ‖∇(λ·Î)‖ from critics on the largest share of rows over
    that from the smallest ("ratio"), and whether the two means differ by less than the larger
    of their sds over the critics ("within spread": the share makes no difference these
    critics can show)."""
    out = []
    for epoch, at in rows.groupby("epoch"):
        few, whole = (at[at["fraction"] == f]["mi"] for f in (at["fraction"].min(), at["fraction"].max()))
        spread = max(few.std(ddof=1), whole.std(ddof=1))
        out.append({"epoch": epoch, "ratio": whole.mean() / few.mean(),
                    "within spread": bool(abs(whole.mean() - few.mean()) < spread)})
    return pd.DataFrame(out)


def of_runs(records, epochs, fractions, critic_seeds, compute_missing: bool = False,
            root: Path | None = None) -> pd.DataFrame:
    """`load_or_measure` for every record of `records`, as one table (empty without any)."""
    rows = [load_or_measure(r, epochs, fractions, critic_seeds, compute_missing=compute_missing,
                            root=root) for r in records]
    return pd.concat(rows) if rows else pd.DataFrame()


def found_text(rows: pd.DataFrame) -> str:
    """What the measurements say (`load_or_measure` rows of one or more runs): how many times
    as hard a critic on the largest share of rows pushes as one on the smallest, per
    snapshot, and whether that exceeds the spread over critics."""
    ratios = share_ratios(rows)
    few, whole = rows["fraction"].min(), rows["fraction"].max()
    runs = sorted(rows["seed"].unique())
    return (f"A fresh critic on {whole:g} of the rows sends the RNN a gradient "
            + " and ".join(f"{r.ratio:.2g} times as large as one on {few:g} of them at epoch {r.epoch}"
                           for r in ratios.itertuples())
            + f" (mean over {rows['critic_seed'].nunique()} critics of run"
            f"{'s' * (len(runs) > 1)} {', '.join(map(str, runs))}); "
            + ("the difference is within the spread over critics at every snapshot, so the `book` profile's "
               "smaller critic does not push the network detectably less than the `paper` profile's."
               if ratios["within spread"].all() else
               "at some snapshot the difference exceeds the spread over critics."))
