"""A second look at the MI of a trained network: a fresh critic, symmetric noise, held-out data.

The Î logged in training comes from the critic each network was trained against, with the
working-memory noise asymmetry (SPEC §4.2) whose offset depends on the activity's spread
(chapter 2). Here the final network of a record is run on fresh data, a new statistics
network of the training critic's architecture and optimiser is trained on one part of that
activity with the noise added to both groups alike (SPEC §4.2's recommendation), and Î is
taken on the other part, which the critic never saw. Beside it: each group's spread and
chapter 2's closed-form asymmetry offset at that spread.

Estimates are stored, with their settings and provenance, as
`results/posthoc/<task>/<config hash>/seed-<seed>.json`.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import claims, evaluate, files, store
from .config import EstimatorConfig
from .mine import MineEstimator, critic_step, make_critic_optimizer
from .synthetic import GaussianPair, asymmetric_noise_target, seeds_of

STEPS = 400          # critic steps on the training part
EVALUATIONS = 20     # draws (permutation, noise, rows) averaged on the held-out part
ANALYSIS_SEED = 0    # seed of the fresh working-memory batches


def group_activity(record, seed: int = ANALYSIS_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The final network's group activity as the training critic sees it, split into a
    training and a held-out part: ((2, n, d₁), (2, n, d₂)).

    Working memory: r = tanh(x) over the scored steps of two fresh batches (seeds `seed`
    and `seed + 1`). Separation: h over all steps of the fixed test set, its sequences
    split in two halves (no fresh data exists beyond the training pool and the test set).
    """
    config = record.config
    parameters = evaluate.final_parameters(record.snapshots)
    half = config.model.n_units // 2
    if config.model.kind == "leaky_rnn":
        parts = [np.tanh(evaluate.replay_wm(config, parameters, s).x[:, config.task.n_transient:])
                 for s in (seed, seed + 1)]
    else:
        h = evaluate.replay_separation(config, parameters).h
        n = h.shape[0] // 2
        parts = [h[:n], h[n:2 * n]]
    flat = np.stack([p.reshape(-1, p.shape[-1]) for p in parts]).astype(np.float32)
    return flat[..., :half], flat[..., half:]


def symmetric(cfg: EstimatorConfig) -> EstimatorConfig:
    """The training critic's settings with its noise added inside the estimator to both
    groups and to the shuffled copy alike."""
    return dataclasses.replace(cfg, noise_inside=True, noise_asymmetric=False)


def fresh_critic_mi(g1: np.ndarray, g2: np.ndarray, cfg: EstimatorConfig, steps: int = STEPS,
                    evaluations: int = EVALUATIONS, seed: int = 0) -> dict[str, float]:
    """Train a new critic on part 0 of (g1, g2) ((2, n, d) each) for `steps` steps and
    estimate Î on part 1: the mean over `evaluations` draws, in nats, with the standard
    error of that mean, and the mean Î of the last fifth of the training steps."""
    init, _, draws = seeds_of(seed)
    estimator = MineEstimator(g1.shape[-1], g2.shape[-1], cfg, generators=init)
    optimizer = make_critic_optimizer(estimator, cfg)
    train = torch.from_numpy(g1[0])[None], torch.from_numpy(g2[0])[None]
    held = torch.from_numpy(g1[1])[None], torch.from_numpy(g2[1])[None]
    trace = np.array([critic_step(estimator, optimizer, *train, draws, cfg)[0]
                      for _ in range(steps)])
    with torch.no_grad():
        values = np.array([float(estimator(*held, draws)[0]) for _ in range(evaluations)])
    return {"mi": float(values.mean()),
            "mi_sem": float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0,
            "mi_training_part": float(trace[-max(1, steps // 5):].mean())}


def spread(g: np.ndarray) -> float:
    """The mean over units of each unit's standard deviation over samples: (..., n, d) → float."""
    return float(np.asarray(g).reshape(-1, g.shape[-1]).std(axis=0).mean())


def asymmetry_offset(dim: int, activity_spread: float, noise_std: float) -> float:
    """Chapter 2's closed-form offset of the asymmetric-noise bound for independent Gaussian
    groups of `dim` units with std `activity_spread`, in nats."""
    return asymmetric_noise_target(GaussianPair(dim, 0.0, scale=activity_spread), noise_std)


def path(record, root: Path | None = None) -> Path:
    """Where the post-hoc estimate of `record` is stored."""
    base = Path(root) if root is not None else store.RESULTS
    return base / "posthoc" / record.config.task_name / record.config.config_hash() / f"seed-{record.seed}.json"


def estimate(record, steps: int = STEPS, seed: int = ANALYSIS_SEED) -> dict:
    """Everything of the post-hoc table for one record, with settings and provenance."""
    clock = time.perf_counter()
    g1, g2 = group_activity(record, seed)
    cfg = symmetric(record.config.estimator)
    result = fresh_critic_mi(g1, g2, cfg, steps, seed=seed)
    spreads = [spread(g1), spread(g2)]
    return {
        "task": record.config.task_name, "config_hash": record.config.config_hash(), "seed": record.seed,
        "lambda_mi": record.config.training.lambda_mi, **result,
        "spread_g1": spreads[0], "spread_g2": spreads[1],
        "asymmetry_offset": asymmetry_offset(g1.shape[-1], float(np.mean(spreads)),
                                             record.config.estimator.noise_std),
        "settings": {"steps": steps, "evaluations": EVALUATIONS, "analysis_seed": seed,
                     "samples_per_part": int(g1.shape[1]), "critic": dataclasses.asdict(cfg)},
        "provenance": store.provenance({"seconds": time.perf_counter() - clock}),
    }


def load_or_estimate(record, compute_missing: bool = False, root: Path | None = None,
                     steps: int = STEPS) -> dict | None:
    """The stored estimate of `record`; computed and stored when missing and
    `compute_missing` (tens of seconds per working-memory run), else None."""
    target = path(record, root)
    if target.exists():
        return json.loads(target.read_text())
    if not compute_missing:
        return None
    result = estimate(record, steps)
    target.parent.mkdir(parents=True, exist_ok=True)
    files.atomic_write_bytes(target, (json.dumps(result, indent=1) + "\n").encode())
    return result


COLUMNS = {"mi_training": "Î in training (nats)", "mi": "Î post hoc, held out (nats)",
           "mi_training_part": "Î post hoc, training part (nats)", "spread_g1": "spread G1",
           "spread_g2": "spread G2", "asymmetry_offset": "asymmetry offset (nats)"}


def table(record_sets: dict, training_mi: dict, compute_missing: bool = False,
          root: Path | None = None) -> tuple[pd.DataFrame, list[tuple[str, str, int]]]:
    """The post-hoc estimates of groups of records as one table, and the runs without one.

    record_sets: {(condition, profile): [record, …]}; training_mi: {(profile, condition,
    seed): the training-time Î to show beside}. Returns one row per run with "profile",
    "condition", "seed" and the COLUMNS, and (profile, condition, seed) of each run whose
    estimate is not stored (and not computed; `describe_missing` names them).
    """
    rows, missing = [], []
    for (condition, profile), records in record_sets.items():
        for r in records:
            result = load_or_estimate(r, compute_missing, root)
            if result is None:
                missing.append((profile, condition, r.seed))
                continue
            values = {**result, "mi_training": training_mi[profile, condition, r.seed]}
            rows.append({"profile": profile, "condition": condition, "seed": r.seed,
                         **{label: values[key] for key, label in COLUMNS.items()}})
    return pd.DataFrame(rows, columns=["profile", "condition", "seed", *COLUMNS.values()]), missing


def summary(runs: pd.DataFrame, by, columns=None) -> pd.DataFrame:
    """A `table`'s runs per group (`by`: "condition", or ["profile", "condition"]): their
    count and each of `columns` (default: all of COLUMNS' labels) as mean ± sd; a column per
    group."""
    columns = list(COLUMNS.values()) if columns is None else list(columns)
    return (runs.groupby(by, sort=False)
            .agg(runs=("seed", "size"), **{c: (c, claims.mean_sd) for c in columns}).T)


def held_out_text(runs: pd.DataFrame, mi_label: str, control_label: str) -> str:
    """The mean held-out Î of both conditions beside what their training critics said ("" when
    a condition has no run in `runs`, a `table`)."""
    held = runs.groupby("condition")["Î post hoc, held out (nats)"].mean()
    trained = runs.groupby("condition")["Î in training (nats)"].mean()
    if not {mi_label, control_label} <= set(held.index):
        return ""
    return (f"Mean Î held out, {mi_label}: {held[mi_label]:.3f} nats against "
            f"{held[control_label]:.3f} for the control; the training critics said "
            f"{trained[mi_label]:.3f} and {trained[control_label]:.3f}.")


def versus_control(runs: pd.DataFrame, mi_label: str, control_label: str,
                   alpha: float = claims.ALPHA) -> pd.DataFrame:
    """Is Î lower with MI minimisation than in the control, by the training critic and by
    the fresh one? runs: a `table` (one row per run). The verdict and numbers of
    `claims.versus_control` ("Î lower than the control") per profile holding both
    conditions and per estimate ("in training", "post hoc, held out"), indexed by the two;
    empty when no profile holds both."""
    rows = []
    for profile, group in runs.groupby("profile", sort=False):
        mi, control = (group[group["condition"] == label] for label in (mi_label, control_label))
        if mi.empty or control.empty:
            continue
        for estimate, key in (("in training", "mi_training"), ("post hoc, held out", "mi")):
            verdict = claims.versus_control("", "Î", mi[COLUMNS[key]], control[COLUMNS[key]],
                                            alternative="less", alpha=alpha)
            rows.append({"profile": profile, "Î": estimate, "verdict": verdict.verdict,
                         "numbers": verdict.numbers})
    return pd.DataFrame(rows, columns=["profile", "Î", "verdict", "numbers"]).set_index(["profile", "Î"])


def describe_missing(missing: list[tuple[str, str, int]]) -> str:
    """A sentence naming the runs without a stored estimate, grouped by profile and
    condition, wrapped at 88 characters."""
    import textwrap

    groups: dict[tuple[str, str], list[int]] = {}
    for profile, condition, seed in missing:
        groups.setdefault((profile, condition), []).append(seed)
    return textwrap.fill(
        f"No post-hoc estimate is stored for {len(missing)} runs ("
        + "; ".join(f"{p} {c}: seeds {', '.join(map(str, sorted(s)))}" for (p, c), s in groups.items())
        + "); re-run the chapter with train_missing=True to compute them.", 88)
