"""Analyses on arrays: numbers in, numbers out; no training and no torch here."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .config import WMTaskConfig
from .tasks import OFF_CHANNELS, ON_CHANNELS, WMBatch


def pulse_statistics(batch: WMBatch, cfg: WMTaskConfig) -> dict[str, tuple[float, float]]:
    """Measured vs expected statistics of a working-memory batch, as {name: (measured, expected)}.

    - onset rate: onsets per channel and step (expected p);
    - onsets per channel in the learning segment (expected n_learn·p);
    - fraction of steps a channel is on, after the first pulse length (expected 1 − (1 − p)^L);
    - mean steps between bit flips (expected 1 / (p (1 − p)): an OFF onset without an ON
      onset flips +1 → −1, and symmetrically).
    """
    p, n_steps = cfg.onset_prob, cfg.n_transient + cfg.n_learn
    onsets = batch.onsets[:, :n_steps]
    learning = onsets[:, cfg.n_transient:]
    steady = batch.inputs[:, cfg.pulse_length:] > 0
    flips = np.count_nonzero(np.diff(batch.bits[:, 1:], axis=1))
    exposure = batch.bits.shape[0] * 2 * (batch.bits.shape[1] - 2)
    return {
        "onset rate per channel and step": (float(onsets.mean()), p),
        "onsets per channel in the learning segment": (
            float(learning.sum(axis=1).mean()), cfg.n_learn * p),
        "fraction of steps a channel is on": (
            float(steady.mean()), 1 - (1 - p) ** cfg.pulse_length),
        "mean steps between bit flips": (
            exposure / flips if flips else float("inf"), 1 / (p * (1 - p))),
    }


def channel_names() -> list[str]:
    """Names of the four working-memory input channels, in channel order."""
    names = [""] * 4
    for bit, (on, off) in enumerate(zip(ON_CHANNELS, OFF_CHANNELS), start=1):
        names[on], names[off] = f"ON{bit}", f"OFF{bit}"
    return names


# --- training records ------------------------------------------------------------------

SUCCESS_ACCURACY = 0.9  # SPEC §6.1: a working-memory run succeeds when final accuracy > 0.9


def stack_history(records, key: str) -> np.ndarray:
    """One history entry of several runs as (n_runs, epochs)."""
    return np.stack([np.asarray(r.history[key], dtype=float) for r in records])


def final_values(records) -> pd.DataFrame:
    """A row per run: seed, λ, and the last epoch's accuracy, MSE, Î (mi_before, nats), L2."""
    rows = []
    for r in records:
        h = r.history
        rows.append({
            "seed": r.seed, "lambda_mi": r.config.training.lambda_mi,
            "accuracy": float(h["accuracy"][-1]), "mse": float(h["mse"][-1]),
            "mi": float(h["mi_before"][-1]), "l2": float(h["l2"][-1]),
        })
    return pd.DataFrame(rows)


def condition_summary(finals: pd.DataFrame, threshold: float = SUCCESS_ACCURACY) -> pd.DataFrame:
    """Per λ: number of runs, mean ± sd (ddof 1) of final accuracy and Î, success rate."""
    grouped = finals.groupby("lambda_mi", sort=False)
    return pd.DataFrame({
        "runs": grouped.size(),
        "accuracy mean": grouped["accuracy"].mean(),
        "accuracy sd": grouped["accuracy"].std(),
        "Î mean (nats)": grouped["mi"].mean(),
        "Î sd (nats)": grouped["mi"].std(),
        f"success rate (accuracy > {threshold})": grouped["accuracy"].apply(
            lambda a: float((a > threshold).mean())),
    })


# --- functional and structural differentiation (SPEC §6.2–6.4) ---------------------------

def two_groups(n_units: int) -> np.ndarray:
    """Group labels 0 (G1, units 0…N/2−1) and 1 (G2, units N/2…N−1): (n_units,) int."""
    return (np.arange(n_units) >= n_units // 2).astype(int)


def symmetrised_weights(matrix: np.ndarray, negative: str | None = None) -> np.ndarray:
    """A = |M_off| + |M_off|ᵀ with a zero diagonal (SPEC §6.4): (N, N) → (N, N).

    `negative` must be "abs" when M has negative entries (weights, signed correlations):
    the caller states that their magnitudes are used; otherwise negative entries are refused.
    """
    m = np.array(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {m.shape}")
    np.fill_diagonal(m, 0.0)
    if (m < 0).any() and negative != "abs":
        raise ValueError("the matrix has negative entries; pass negative='abs' to use magnitudes")
    m = np.abs(m)
    return m + m.T


def modularity(adjacency: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """Newman's Q of a fixed partition on a symmetric nonnegative matrix, and Q / Q_max.

    Q = (1/2m) Σ_ij [A_ij − k_i k_j / 2m] δ(g_i, g_j);  Q_max = 1 − (1/2m) Σ_ij k_i k_j/2m δ(g_i, g_j).
    """
    a = np.asarray(adjacency, dtype=float)
    k = a.sum(axis=1)
    two_m = k.sum()
    if two_m <= 0:
        raise ValueError("the matrix has no weight; modularity is undefined")
    same = np.equal.outer(groups, groups)
    expected = (np.outer(k, k) / two_m * same).sum() / two_m
    q = (a * same).sum() / two_m - expected
    return float(q), float(q / (1.0 - expected))


def d_index(a: np.ndarray, b: np.ndarray, groups: np.ndarray) -> float:
    """Separation index D = |Σ_{G1}(a − b) − Σ_{G2}(a − b)| / Σ(a + b) ∈ [0, 1] (SPEC §6.3).

    a, b: (N,) nonnegative strengths of each neuron towards sub-task 1 and sub-task 2.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if (a < 0).any() or (b < 0).any():
        raise ValueError("D needs nonnegative strengths (pass magnitudes)")
    diff = a - b
    return float(abs(diff[groups == 0].sum() - diff[groups == 1].sum()) / (a + b).sum())
