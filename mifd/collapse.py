"""Does a critic collapse on a network that does not move? (#35)

The training estimate of the working-memory runs collapses (`analysis.collapses`) while the
network and the critic move together. Here the network is frozen at a stored snapshot and a
fresh critic of the run's settings — with the authors' noise form or the well-posed one
(`estimator.noise_asymmetric`) — takes `PRETRAIN` ascent steps, as a run's pre-training does,
and then `OBSERVED` more, each on a fresh batch from x₀ = 0 as the SM phase draws them
(`push.frozen_state`, `train.critic_phase`). If the critic collapses only while the network
moves, the collapses are a property of the two trained together, not of the bound on a given
network. Observations are stored as `results/collapse/wm/<config hash>/seed-<seed>.json`, one
entry per (snapshot, noise form, critic seed): the Î of every step, before its update.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis, push, store, train

PRETRAIN = 100   # the fresh critic's steps before it is watched (a run's pre-training)
OBSERVED = 200   # steps watched after them
CHUNK = 25       # SM steps whose batches the frozen network runs at once


def observe(record, epoch: int, noise_asymmetric: bool, critic_seed: int,
            steps: int = PRETRAIN + OBSERVED) -> np.ndarray:
    """Î (nats) before each of `steps` ascent steps of a fresh critic on `record`'s snapshot
    at `epoch`, with the given noise form, (steps,)."""
    config = record.config.replace(**{"estimator.noise_asymmetric": noise_asymmetric})
    state = push.frozen_state(record, epoch, config, critic_seed)
    return np.concatenate([train.critic_phase(state, min(CHUNK, steps - done), x0_normal=False)[:, 0]
                           for done in range(0, steps, CHUNK)])


def path(record, root: Path | None = None) -> Path:
    base = store.RESULTS if root is None else Path(root)
    return base / "collapse" / "wm" / record.config.config_hash() / f"seed-{record.seed}.json"


def load_or_observe(record, epochs, forms=(True, False), critic_seeds=(0,),
                    steps: int = PRETRAIN + OBSERVED, compute_missing: bool = False,
                    root: Path | None = None) -> list[dict]:
    """The stored observations of `record` for every (epoch, noise form, critic seed) asked
    for, each {"epoch", "noise_asymmetric", "critic_seed", "steps", "mi": [Î per step]};
    missing ones are observed and stored when `compute_missing` (about a minute each at `book`
    on one core), else left out."""
    wanted = [{"epoch": e, "noise_asymmetric": form, "critic_seed": c, "steps": steps}
              for e in epochs for form in forms for c in critic_seeds]
    return push.kept(path(record, root), wanted, lambda w: {"mi": observe(
        record, w["epoch"], w["noise_asymmetric"], w["critic_seed"], w["steps"]).tolist()},
        compute_missing, entries="observations")


def summary(observations: list[dict], seed: int, pretrain: int = PRETRAIN,
            threshold: float = analysis.COLLAPSE_NATS) -> pd.DataFrame:
    """One row per observation of run `seed`: the critic's noise form, the snapshot, how many
    of the first `pretrain` steps and of the later ones collapsed (Î below `threshold`), and
    the lowest and median Î of the later steps."""
    rows = []
    for o in observations:
        mi = np.asarray(o["mi"], float)
        early, late = mi[:pretrain], mi[pretrain:]
        rows.append({"seed": seed, "epoch": o["epoch"],
                     "critic": "authors'" if o["noise_asymmetric"] else "well-posed",
                     "critic seed": o["critic_seed"],
                     f"collapsed, steps 1–{pretrain}": int((~(early >= threshold)).sum()),
                     f"collapsed, steps {pretrain + 1}–{mi.size}": int((~(late >= threshold)).sum()),
                     "lowest Î after (nats)": float(late.min()) if late.size else float("nan"),
                     "median Î after (nats)": float(np.median(late)) if late.size else float("nan")})
    return pd.DataFrame(rows)


def frozen_text(table: pd.DataFrame, pretrain: int = PRETRAIN) -> str:
    """The frozen-snapshot observations of a `summary` table in sentences: per noise form, how
    often the critic collapses during its pre-training and in the watched steps after it, over
    which snapshots, and the lowest Î then; and, where neither form collapses after its
    pre-training, what that says of the collapses in training."""
    if table.empty:
        return "No critic has been observed on a frozen snapshot of these runs yet."
    early = f"collapsed, steps 1–{pretrain}"
    after = next(c for c in table.columns if c.startswith("collapsed, steps ") and c != early)
    watched = int(after.rsplit("–", 1)[1]) - pretrain
    def times(n) -> str:
        return {0: "never", 1: "once"}.get(int(n), f"{int(n)} times")

    parts = []
    for critic, rows in table.groupby("critic", sort=False):
        parts.append(f"the {critic} critic collapses {times(rows[early].sum())} during its "
                     f"pre-training ({len(rows)} × {pretrain} steps) and {times(rows[after].sum())} "
                     f"in the {len(rows)} × {watched} watched steps after it (lowest Î then "
                     f"{rows['lowest Î after (nats)'].min():.2f} nats)")
    snapshots = ", ".join(f"seed {s} at epoch {e}" for s, e in
                          table[["seed", "epoch"]].drop_duplicates().itertuples(index=False))
    text = f"On frozen snapshots ({snapshots}), " + "; ".join(parts) + "."
    if table[after].sum() == 0:
        text += (" On a network that stands still, neither noise form collapses once the critic "
                 "has been pre-trained, and the two behave alike: in training, the authors' critic "
                 "collapses only while the network moves under it.")
    return text
