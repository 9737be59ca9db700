"""Analyses on arrays: numbers in, numbers out; no training and no torch here."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .config import WMTaskConfig
from .tasks import OFF_CHANNELS, ON_CHANNELS


def pulse_statistics(onsets: np.ndarray, inputs: np.ndarray, bits: np.ndarray,
                     cfg: WMTaskConfig) -> dict[str, tuple[float, float]]:
    """Measured vs expected statistics of a working-memory batch, as {name: (measured, expected)}.

    inputs: (B, T, 4) input pulses; bits: (B, T + 1, 2) the latched ±1 bits; onsets:
    (B, T + 2, 4) bool pulse onsets (`tasks.WMBatch`'s arrays); cfg: the task's settings.

    - onset rate: onsets per channel and step (expected p);
    - onsets per channel in the learning segment (expected n_learn·p);
    - fraction of steps a channel is on, after the first pulse length (expected 1 − (1 − p)^L);
    - mean steps between bit flips (expected 1 / (p (1 − p)): an OFF onset without an ON
      onset flips +1 → −1, and symmetrically).
    """
    p, n_steps = cfg.onset_prob, cfg.n_transient + cfg.n_learn
    onsets = onsets[:, :n_steps]
    learning = onsets[:, cfg.n_transient:]
    steady = inputs[:, cfg.pulse_length:] > 0
    flips = np.count_nonzero(np.diff(bits[:, 1:], axis=1))
    exposure = bits.shape[0] * 2 * (bits.shape[1] - 2)
    return {
        "onset rate per channel and step": (float(onsets.mean()), p),
        "onsets per channel in the learning segment": (
            float(learning.sum(axis=1).mean()), cfg.n_learn * p),
        "fraction of steps a channel is on": (
            float(steady.mean()), 1 - (1 - p) ** cfg.pulse_length),
        "mean steps between bit flips": (
            exposure / flips if flips else float("inf"), 1 / (p * (1 - p))),
    }


# --- training records ------------------------------------------------------------------

def stack_history(records, key: str) -> np.ndarray:
    """One history entry of several runs as (n_runs, epochs)."""
    return np.stack([np.asarray(r.history[key], dtype=float) for r in records])


RECENT_EPOCHS = 10  # the window of the robust final Î


def final_values(records) -> pd.DataFrame:
    """A row per run: seed, λ, and the last epoch's accuracy, MSE, Î (mi_before, nats), L2.

    "mi" is the last logged Î, as the authors' script takes it; "mi_recent" is the median
    of the last RECENT_EPOCHS logged values, which a single collapsed minibatch bound (an
    estimate of −20 nats or lower in one epoch) cannot move.
    """
    rows = []
    for r in records:
        h = r.history
        rows.append({
            "seed": r.seed, "lambda_mi": r.config.training.lambda_mi,
            "accuracy": float(h["accuracy"][-1]), "mse": float(h["mse"][-1]),
            "mi": float(h["mi_before"][-1]),
            "mi_recent": float(np.median(h["mi_before"][-RECENT_EPOCHS:])),
            "l2": float(h["l2"][-1]),
        })
    return pd.DataFrame(rows)


def condition_summary(finals: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per λ: number of runs, mean ± sd (ddof 1) of final accuracy and Î (the last value and
    the recent median), success rate (accuracy > `threshold`)."""
    grouped = finals.groupby("lambda_mi", sort=False)
    return pd.DataFrame({
        "runs": grouped.size(),
        "accuracy mean": grouped["accuracy"].mean(),
        "accuracy sd": grouped["accuracy"].std(),
        "last Î mean (nats)": grouped["mi"].mean(),
        "last Î sd (nats)": grouped["mi"].std(),
        f"Î median of last {RECENT_EPOCHS}, mean (nats)": grouped["mi_recent"].mean(),
        f"Î median of last {RECENT_EPOCHS}, sd (nats)": grouped["mi_recent"].std(),
        f"success rate (accuracy > {threshold})": grouped["accuracy"].apply(
            lambda a: float((a > threshold).mean())),
    })


def sign_errors(outputs: np.ndarray, targets: np.ndarray, n_transient: int) -> pd.DataFrame:
    """Where a working-memory network holds the wrong bit, over the scored steps of every
    sequence: one row per bit with the fraction of steps whose output sign differs from the
    target's (SPEC §3.1's accuracy, complemented) and the longest such stretch in steps.

    outputs, targets: (B, T, 2), the first n_transient steps unscored.
    """
    wrong = (outputs[:, n_transient:] > 0) != (np.round((targets[:, n_transient:] + 1) / 2) > 0)
    rows = []
    for bit in range(wrong.shape[-1]):
        longest = 0
        for sequence in wrong[..., bit]:
            edges = np.diff(np.r_[0, sequence.astype(np.int8), 0])
            if edges.any():
                longest = max(longest, int((np.flatnonzero(edges < 0) - np.flatnonzero(edges > 0)).max()))
        rows.append({"bit": bit + 1, "wrong fraction": float(wrong[..., bit].mean()),
                     "longest wrong stretch (steps)": longest})
    return pd.DataFrame(rows)


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
    if a.ndim != 2 or a.shape[0] != a.shape[1] or not np.allclose(a, a.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"modularity needs a symmetric square matrix, got shape {a.shape}"
                         + (" that is not symmetric" if a.ndim == 2 and a.shape[0] == a.shape[1] else "")
                         + "; symmetrise it first (symmetrised_weights)")
    if (a < 0).any():
        raise ValueError("modularity needs nonnegative weights; take magnitudes first (symmetrised_weights)")
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


# --- neuron–target correlations and the indices of one network (SPEC §6.2–6.5) ----------

BIT_ROWS = tuple(zip(ON_CHANNELS, OFF_CHANNELS))  # W_in rows of bit 1 (ON1, OFF1), of bit 2


def pooled(x: np.ndarray, n_transient: int) -> np.ndarray:
    """(B, T, K) → the scored samples (B·(T − n_transient), K), sequences and steps pooled."""
    return x[:, n_transient:].reshape(-1, x.shape[-1])


def cross_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of a (S, Ka) with every column of b (S, Kb): (Ka, Kb)."""
    a = (a - a.mean(axis=0)) / a.std(axis=0)
    b = (b - b.mean(axis=0)) / b.std(axis=0)
    return a.T @ b / a.shape[0]


def target_correlations(x: np.ndarray, targets: np.ndarray, n_transient: int) -> np.ndarray:
    """c_i^(j) = corr(x_i, y_j) over the pooled scored samples (SPEC §6.2): (N, 2).

    x: pre-activation states (B, T, N); targets: (B, T, 2), aligned with x step by step.
    """
    return cross_correlations(pooled(x, n_transient), pooled(targets, n_transient))


def neuron_correlations(x: np.ndarray, n_transient: int) -> np.ndarray:
    """The neuron–neuron Pearson correlation matrix C of x over the pooled samples: (N, N)."""
    samples = pooled(x, n_transient)
    return cross_correlations(samples, samples)


def correlation_difference(c: np.ndarray) -> np.ndarray:
    """d_i = |c_i^(1)| − |c_i^(2)| for c of shape (N, 2): (N,)."""
    return np.abs(c[:, 0]) - np.abs(c[:, 1])


def input_strengths(w_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each neuron's summed |W_in| from bit 1's channels and from bit 2's: two (N,) arrays."""
    magnitude = np.abs(w_in)
    return tuple(magnitude[list(rows)].sum(axis=0) for rows in BIT_ROWS)


BLOCKS = ("G1→G1", "G1→G2", "G2→G1", "G2→G2")


def near_zero_weight(n_units: int) -> float:
    """The magnitude below which a recurrent weight counts as near zero: a tenth of the
    initial weights' sd for gain 1, 0.1/√N."""
    return 0.1 / np.sqrt(n_units)


def block_sparsity(w_rec: np.ndarray, near_zero: float | None = None) -> dict[str, float]:
    """The share of near-zero recurrent weights in each block of W_rec (N, N), row =
    presynaptic (w_rec[i, j] is the weight from unit i to unit j), self-connections left
    out: {"G1→G1": share, "G1→G2": …, "G2→G1": …, "G2→G2": …, "all": share over every
    off-diagonal weight}. Near zero: |w| below `near_zero`, by default `near_zero_weight(N)`
    (an L1 penalty with RMSprop leaves weights jittering around zero, not at it)."""
    n = w_rec.shape[0]
    threshold = near_zero_weight(n) if near_zero is None else near_zero
    groups = two_groups(n)
    small = np.abs(w_rec) < threshold
    off_diagonal = ~np.eye(n, dtype=bool)
    shares = {}
    for name in BLOCKS:
        pre, post = int(name[1]) - 1, int(name[-1]) - 1
        block = off_diagonal & (groups[:, None] == pre) & (groups[None, :] == post)
        shares[name] = float(small[block].mean())
    shares["all"] = float(small[off_diagonal].mean())
    return shares


def weight_differences(parameters: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each unit's preference of its output and input weights for bit 1 over bit 2, (N,) each:
    d_out = |W_out[i,1]| − |W_out[i,2]| and d_in = Σ|W_in bit 1| − Σ|W_in bit 2|."""
    w_out = np.abs(parameters["w_out"])
    bit1, bit2 = input_strengths(parameters["w_in"])
    return {"d_out = |W_out[i,1]| − |W_out[i,2]|": w_out[:, 0] - w_out[:, 1],
            "d_in = Σ|W_in bit 1| − Σ|W_in bit 2|": bit1 - bit2}


ALIGNMENT_COLUMNS = ("r(d, d_out)", "r(d, d_in)")


def weight_alignment(parameters: dict[str, np.ndarray], c: np.ndarray) -> dict[str, float]:
    """Pearson r of the functional preference d_i (from the (N, 2) target correlations `c`)
    with each weight difference: {"r(d, d_out)": r, "r(d, d_in)": r}."""
    d = correlation_difference(c)
    return dict(zip(ALIGNMENT_COLUMNS, (pearson_r(d, diff)
                                        for diff in weight_differences(parameters).values())))


def wm_indices(parameters: dict[str, np.ndarray], x: np.ndarray, targets: np.ndarray,
               n_transient: int) -> dict[str, float]:
    """All differentiation indices of one working-memory network (SPEC §6.3–6.4).

    parameters: {"w_in" (4, N), "w_rec" (N, N), "w_out" (N, 2), …}; x, targets: a replayed
    batch (B, T, N) and (B, T, 2). Returns Q_str and Q_nom_str on W_rec, Q_corr and
    Q_nom_corr on the neuron correlation matrix, D_corr, D_in, D_out, and the weights'
    alignment with function (`weight_alignment`).
    """
    groups = two_groups(x.shape[-1])
    signed = target_correlations(x, targets, n_transient)
    c = np.abs(signed)
    w_out = np.abs(parameters["w_out"])
    q_str = modularity(symmetrised_weights(parameters["w_rec"], negative="abs"), groups)
    q_corr = modularity(symmetrised_weights(neuron_correlations(x, n_transient), negative="abs"),
                        groups)
    return {
        "Q_str": q_str[0], "Q_nom_str": q_str[1], "Q_corr": q_corr[0], "Q_nom_corr": q_corr[1],
        "D_corr": d_index(c[:, 0], c[:, 1], groups),
        "D_in": d_index(*input_strengths(parameters["w_in"]), groups),
        "D_out": d_index(w_out[:, 0], w_out[:, 1], groups),
        **weight_alignment(parameters, signed),
    }


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two (N,) arrays."""
    return float(np.corrcoef(a, b)[0, 1])


# --- when each index emerges (beyond the paper: SPEC §6.7 [rec]) --------------------------

def onset_time(epochs: np.ndarray, values: np.ndarray, fraction: float,
               from_start: bool = False) -> float:
    """The first evaluated epoch at which `values` reaches `fraction` of its final value.

    epochs, values: (n_evaluations,), in training order. With `from_start` the level is
    that fraction of the rise from the first value instead: v₀ + fraction·(v_final − v₀),
    which does not count an index as grown when it merely starts above zero. NaN when
    there is nothing to reach: a final value (or rise) that is not positive.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    start = values[0] if from_start else 0.0
    growth = values[-1] - start
    if not growth > 0:
        return float("nan")
    return float(epochs[np.argmax(values >= start + fraction * growth)])


# --- courses that rise and fall back --------------------------------------------------------

PEAK_SMOOTHING = 3   # snapshots in the centred running median a course's peak is read from
END_SNAPSHOTS = 5    # snapshots whose mean is a course's end-of-training value


def smoothed(values: np.ndarray, width: int = PEAK_SMOOTHING) -> np.ndarray:
    """The centred running median of `width` (odd) entries, (n,) → (n,); the ends take the
    median of the entries that exist, so one snapshot's jump cannot make a peak."""
    values = np.asarray(values, float)
    half = width // 2
    return np.array([np.median(values[max(0, i - half): i + half + 1])
                     for i in range(values.size)])


def rise(epochs: np.ndarray, values: np.ndarray, fraction: float = 0.5) -> dict[str, float]:
    """A course read as a rise to a peak and what it keeps of it.

    epochs, values: (n,) in training order. On the `smoothed` course, with v₀ the first
    value: "peak" and "peak_epoch" (its maximum), "onset" the first epoch at which it reaches
    v₀ + `fraction`·(peak − v₀) (the rising limb, wherever the course ends), "end" the mean
    of the last `END_SNAPSHOTS` raw values, and "kept" = (end − v₀)/(peak − v₀), the share of
    its rise the course keeps at the end (1: it stays up; 0: back where it began). Onset and
    kept are NaN when the course never rises above its start."""
    epochs, values = np.asarray(epochs, float), np.asarray(values, float)
    smooth = smoothed(values)
    top = int(np.argmax(smooth))
    start, peak = smooth[0], smooth[top]
    end = float(values[-END_SNAPSHOTS:].mean())
    if not peak > start:
        return {"peak": float(peak), "peak_epoch": float(epochs[top]), "onset": float("nan"),
                "end": end, "kept": float("nan")}
    onset = float(epochs[np.argmax(smooth >= start + fraction * (peak - start))])
    return {"peak": float(peak), "peak_epoch": float(epochs[top]), "onset": onset, "end": end,
            "kept": (end - start) / (peak - start)}


def rise_table(courses: pd.DataFrame, indices: tuple[str, ...], fraction: float = 0.5
               ) -> pd.DataFrame:
    """`rise` of each index per run: one row per run, columns "<field> <index>" (e.g.
    "onset Q_corr", "kept D_corr"). courses: one row per (run, evaluated epoch) with "run",
    "epoch" and the indices."""
    rows = {}
    for run, course in courses.sort_values("epoch", kind="stable").groupby("run", sort=False):
        epochs = course["epoch"].to_numpy()
        rows[run] = {f"{field} {name}": value for name in indices
                     for field, value in rise(epochs, course[name].to_numpy(), fraction).items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def rising_lags(courses: pd.DataFrame, functional: str, structural: str) -> np.ndarray:
    """Per run, how many epochs later the structural index's rising limb reaches half its
    rise to its peak than the functional one's (`rise` onsets; NaN where either does not
    rise), in the order of the runs' first appearance."""
    table = rise_table(courses, (functional, structural))
    return (table[f"onset {structural}"] - table[f"onset {functional}"]).to_numpy()


def onset_table(courses: pd.DataFrame, indices: tuple[str, ...],
                fractions: tuple[float, ...] = (0.5, 0.9), from_start: bool = False
                ) -> pd.DataFrame:
    """t50/t90 (epochs) of each index per run, as `onset_time` defines them.

    courses: one row per (run, evaluated epoch) with columns "run", "epoch" and the indices.
    Returns one row per run with a column "t50 Q_corr", "t90 Q_corr", … per index and fraction.
    """
    rows = []
    for run, course in courses.sort_values("epoch", kind="stable").groupby("run", sort=False):
        row = {"run": run}
        for name in indices:
            for f in fractions:
                row[f"t{round(100 * f)} {name}"] = onset_time(
                    course["epoch"].to_numpy(), course[name].to_numpy(), f, from_start)
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def increment_lag(values_a: np.ndarray, values_b: np.ndarray, max_lag: int | None = None) -> float:
    """The lag k (in evaluations) that maximises corr(Δa_t, Δb_{t+k}) over |k| ≤ max_lag.

    values_a, values_b: (n_evaluations,) courses on the same evenly spaced grid; Δ are their
    increments. Positive k: b's increments follow a's by k evaluations. max_lag defaults to a
    quarter of the increments; each lag needs at least 5 overlapping increments. NaN when a
    course is constant over every overlap.
    """
    da, db = np.diff(np.asarray(values_a, float)), np.diff(np.asarray(values_b, float))
    n = da.size
    max_lag = n // 4 if max_lag is None else max_lag
    best, best_lag = -np.inf, float("nan")
    for k in sorted(range(-max_lag, max_lag + 1), key=abs):
        x, y = (da[: n - k], db[k:]) if k >= 0 else (da[-k:], db[: n + k])
        if x.size < 5 or x.std() == 0 or y.std() == 0:
            continue
        r = np.corrcoef(x, y)[0, 1]
        if r > best + 1e-12:
            best, best_lag = r, float(k)
    return best_lag


PRECEDENCE_MEASURES = ("t50 of the final value", "t50 of the rise from the start",
                       "lag of the increments' cross-correlation")


def precedence_lags(courses: pd.DataFrame, functional: str, structural: str) -> pd.DataFrame:
    """How many epochs later the structural index grows than the functional one, per run, by
    the three measures of PRECEDENCE_MEASURES (positive: structure later; NaN: undefined).

    courses: one row per (run, evaluated epoch) with columns "run", "epoch" and both indices;
    evaluations evenly spaced in epochs. Returns one row per run, one column per measure.
    """
    rows = {}
    for run, course in courses.sort_values("epoch", kind="stable").groupby("run", sort=False):
        epochs = course["epoch"].to_numpy()
        f, s = course[functional].to_numpy(), course[structural].to_numpy()
        onsets = [onset_time(epochs, s, 0.5, rise) - onset_time(epochs, f, 0.5, rise)
                  for rise in (False, True)]
        step = float(np.diff(epochs).min()) if epochs.size > 1 else float("nan")
        rows[run] = [*onsets, increment_lag(f, s) * step]
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(PRECEDENCE_MEASURES))


# --- late training: windows, collapses ------------------------------------------------

def window_values(values: np.ndarray, window: int, reduce=np.median, start: int = 0) -> np.ndarray:
    """`reduce` over consecutive windows of `window` entries from index `start` on:
    (E,) → (ceil((E − start) / window),); a per-epoch history entry e is epoch e + 1."""
    values = np.asarray(values, float)
    return np.array([reduce(values[e:e + window]) for e in range(start, values.size, window)])


LATE_START, LATE_WINDOW = 500, 100  # epochs 500–1000, in windows of 100 epochs


def estimates_below_zero(records: dict[str, list], split: int = LATE_START) -> pd.DataFrame:
    """The share of each run's logged Î (history "mi_before", one per epoch) below zero, over
    epochs 1…`split` and `split`+1…E: a row per run of {label: [RunRecord, …]} with
    "condition", "seed", "before" and "after" (shares in [0, 1]; NaN for an empty span).

    A Donsker–Varadhan estimate is below zero only when the critic scores that batch's
    shuffled pairs higher than its joint ones (a constant critic already gives 0): the critic
    has lost track of the network it estimates on."""
    rows = []
    for label, runs in records.items():
        for r in runs:
            mi = np.asarray(r.history["mi_before"], float)
            early, late = mi[:split], mi[split:]
            rows.append({"condition": label, "seed": r.seed,
                         "before": float(np.mean(early < 0)) if early.size else np.nan,
                         "after": float(np.mean(late < 0)) if late.size else np.nan})
    return pd.DataFrame(rows)


COLLAPSE_NATS = -1.0   # a DV estimate below this is a collapse: no working critic gives it
COLLAPSE_WINDOW = 100  # epochs per share in `collapses`


def collapses(mi: np.ndarray, threshold: float = COLLAPSE_NATS, window: int = COLLAPSE_WINDOW,
              start: int = LATE_START) -> dict[str, Any]:
    """Where a run's per-epoch training estimate Î (nats, (E,), e.g. history "mi_before")
    collapses, i.e. falls below `threshold`.

    Returns "count" (epochs in all), "late_share" (the share of epochs `start`+1…E; NaN when
    there are none), "shares" (the share in each window of `window` epochs, (ceil(E/window),)),
    "first" (the first collapsed epoch, 1-based, or None) and "minimum" (the lowest Î; −inf
    where an estimate overflowed). Non-finite estimates count as collapsed."""
    mi = np.asarray(mi, float)
    low = ~(mi >= threshold)
    late = low[start:]
    return {"count": int(low.sum()),
            "late_share": float(late.mean()) if late.size else float("nan"),
            "shares": window_values(low, window, np.mean),
            "first": int(np.argmax(low)) + 1 if low.any() else None,
            "minimum": float(np.nanmin(mi)) if np.isfinite(mi).any() else float("-inf")}


def carriers(history: dict, rows: int, threshold: float = COLLAPSE_NATS) -> dict[str, np.ndarray] | None:
    """What the bound's logged terms say of each collapsed epoch (Î below `threshold`) of one
    run, from the history keys "mi_joint_term", "mi_marginal_term" (log-mean-exp of the
    marginal scores over `rows` samples) and "marginal_score_max"; None when the run did not
    log them.

    Returns per collapsed epoch, (k,) each: "epoch" (1-based); "n_eff" = exp(marginal − max
    score + log rows) = Σᵢ exp(Tᵢ − max T), the number of marginal samples that carry the
    log-mean-exp, between 1 (one sample's score is all of it) and `rows` (every sample scores
    alike); and "gap", how far the largest marginal score lies above the joint term (nats).
    "gap_ordinary" is the gap in the epochs that did not collapse. The bound is unchanged by
    a constant added to the critic's scores, and so are both quantities; the terms alone are
    not."""
    if not {"mi_joint_term", "mi_marginal_term", "marginal_score_max"} <= set(history):
        return None
    mi = np.asarray(history["mi_before"], float)
    joint, marginal, top = (np.asarray(history[k], float) for k in
                            ("mi_joint_term", "mi_marginal_term", "marginal_score_max"))
    low = ~(mi >= threshold)
    gap = top - joint
    return {"epoch": np.flatnonzero(low) + 1, "n_eff": np.exp(marginal[low] - top[low] + np.log(rows)),
            "gap": gap[low], "gap_ordinary": gap[~low]}


def late_q_corr(course: dict, start: int = LATE_START) -> float:
    """Mean Q_corr of a course's snapshots ("epoch", "Q_corr", each (S,)) from epoch `start` on."""
    epochs, q = np.asarray(course["epoch"]), np.asarray(course["Q_corr"], float)
    return float(np.mean(q[epochs >= start]))


def q_corr_windows(course: dict, start: int = LATE_START, window: int = LATE_WINDOW) -> np.ndarray:
    """Mean Q_corr of the snapshots in each window of `window` epochs from `start` on,
    (n_windows,): windows (start, start + window], … up to the last snapshot."""
    epochs, q = np.asarray(course["epoch"]), np.asarray(course["Q_corr"], float)
    ends = range(start + window, int(epochs.max()) + 1, window)
    return np.array([q[(epochs > end - window) & (epochs <= end)].mean() for end in ends])


# --- separation variants (SPEC §6.1–6.6) ----------------------------------------------------

def r_squared(targets: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """R²_k = 1 − Σ(y − ŷ)² / Σ(y − ȳ_k)² per output over all sequences and steps: (K,).

    targets, outputs: (B, T, K); ȳ_k is the mean over batch and time.
    """
    y = targets.reshape(-1, targets.shape[-1]).astype(float)
    residual = ((y - outputs.reshape(y.shape)) ** 2).sum(axis=0)
    return 1 - residual / ((y - y.mean(axis=0)) ** 2).sum(axis=0)


def per_sequence_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of a (B, T, Ka) with every column of b (B, T, Kb),
    one matrix per sequence: (B, Ka, Kb); NaN where a column is constant in a sequence."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = a / np.sqrt((a ** 2).sum(axis=1, keepdims=True))
        b = b / np.sqrt((b ** 2).sum(axis=1, keepdims=True))
    return np.einsum("bti,btj->bij", a, b)


def output_correlations(h: np.ndarray, outputs: np.ndarray, start: int = 0) -> np.ndarray:
    """Each unit's |corr(h_i, ŷ_k)| over steps t ≥ start, averaged over sequences (NaN-aware):
    h (B, T, N), outputs (B, T, 6) → (N, 6) (SPEC §6.2, separation)."""
    return np.nanmean(np.abs(per_sequence_correlations(h[:, start:], outputs[:, start:])), axis=0)


def system_strengths(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C^L, C^R): the mean of a (N, 6) per-output strength over the Lorenz outputs 0–2 and
    over the Rössler outputs 3–5, two (N,) arrays."""
    return c[:, :3].mean(axis=1), c[:, 3:].mean(axis=1)


def mean_abs_correlation_matrix(h: np.ndarray) -> np.ndarray:
    """The mean over sequences of |corr(h)| over all steps: (B, T, N) → (N, N) (the Q_corr matrix)."""
    return np.nanmean(np.abs(per_sequence_correlations(h, h)), axis=0)


def separation_indices(w_out: np.ndarray, u_h: np.ndarray, h: np.ndarray,
                       outputs: np.ndarray, washout: int) -> dict[str, float]:
    """Q_corr, Q_str, D_corr and D_out of a separation network (SPEC §6.3–6.4).

    w_out: (6, N) readout weights (torch layout); u_h: (N, N) candidate block; h, outputs:
    a test batch (B, T, N) and (B, T, 6). D_corr uses t ≥ washout, Q_corr all steps.
    """
    groups = two_groups(h.shape[-1])
    c_lorenz, c_rossler = system_strengths(output_correlations(h, outputs, washout))
    w = np.abs(w_out).T
    return {
        "Q_corr": modularity(symmetrised_weights(mean_abs_correlation_matrix(h)), groups)[0],
        "Q_str": modularity(symmetrised_weights(u_h, negative="abs"), groups)[0],
        "D_corr": d_index(c_lorenz, c_rossler, groups),
        "D_out": d_index(w[:, :3].mean(axis=1), w[:, 3:].mean(axis=1), groups),
    }


def two_communities(adjacency: np.ndarray) -> np.ndarray:
    """Greedy (Clauset–Newman–Moore) modularity communities forced to two, as SPEC §6.6
    states: (N, N) symmetric nonnegative → (N,) labels 0/1."""
    import networkx as nx

    graph = nx.from_numpy_array(np.asarray(adjacency, dtype=float))
    communities = nx.community.greedy_modularity_communities(
        graph, weight="weight", cutoff=2, best_n=2)
    labels = np.zeros(len(adjacency), dtype=int)
    for label, members in enumerate(communities):
        labels[list(members)] = label
    return labels


def normalized_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """NMI of two labelings with the arithmetic-mean normalisation: I(a; b) / ((H(a) + H(b))/2),
    1 for identical partitions (up to renaming), 0 for independent ones."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1)
    joint /= joint.sum()
    pa, pb = joint.sum(axis=1), joint.sum(axis=0)
    nonzero = joint > 0
    mi = (joint[nonzero] * np.log(joint[nonzero] / np.outer(pa, pb)[nonzero])).sum()
    entropy = -(pa * np.log(pa)).sum() - (pb * np.log(pb)).sum()
    return float(2 * mi / entropy) if entropy > 0 else 1.0
