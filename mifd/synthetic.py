"""Synthetic pairs with known mutual information, and the MINE runs that estimate it.

* `GaussianPair`: x, y ∈ ℝᵈ with normal components of std s, corr(x_k, y_k) = ρ and
  independent components, so I(x; y) = −(d/2)·log(1 − ρ²) nats; optionally a component-wise
  strictly monotone map (x³, y³), which leaves the mutual information unchanged.
* `noisy_mutual_information`, `asymmetric_noise_target`: what the estimator should reach
  with the input noise of SPEC §4.2, symmetric or with the working-memory asymmetry.
* `train_critic`: the Î trace of one critic trained on fresh samples.
* `study`, `summarise`, `verdict`: runs over pairs × sample sizes × seeds, and the bias and
  spread over seeds, with a plain-words verdict computed from them; `describe` and `tally`
  turn a summary into sentences for the book.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .config import EstimatorConfig
from .mine import MineEstimator, critic_step, make_critic_optimizer

TRANSFORMS = ("none", "cube")


@dataclass(frozen=True)
class GaussianPair:
    """x, y: (n, dim) normal with std `scale`, corr(x_k, y_k) = rho, components independent.

    transform "cube" returns (x³, y³) instead: non-Gaussian, heavy-tailed, same I(x; y).
    """

    dim: int
    rho: float
    transform: str = "none"
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if not (self.dim > 0 and -1 < self.rho < 1 and self.scale > 0):
            raise ValueError(f"need dim > 0, |rho| < 1 and scale > 0, got {self}")

    @property
    def mutual_information(self) -> float:
        """I(x; y) = −(dim/2)·log(1 − ρ²), in nats."""
        return -0.5 * self.dim * math.log1p(-self.rho**2)

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n pairs: x, y of shape (n, dim), float32."""
        x = torch.randn(n, self.dim, generator=generator)
        z = torch.randn(n, self.dim, generator=generator)
        y = self.rho * x + math.sqrt(1 - self.rho**2) * z
        x, y = self.scale * x, self.scale * y
        if self.transform == "cube":
            return x**3, y**3
        return x, y


def _check_gaussian(pair: GaussianPair) -> None:
    if pair.transform != "none":
        raise ValueError(f"the noisy closed forms hold for Gaussian pairs only, got {pair}")


def noisy_mutual_information(pair: GaussianPair, noise_std: float) -> float:
    """I(x + ε; y + ε') in nats, ε, ε' ~ N(0, σ²) on every component of a Gaussian pair.

    The noise lowers the correlation to ρ·s²/(s² + σ²), s the pair's scale.
    """
    _check_gaussian(pair)
    rho = pair.rho * pair.scale**2 / (pair.scale**2 + noise_std**2)
    return -0.5 * pair.dim * math.log1p(-rho**2)


def asymmetric_noise_target(pair: GaussianPair, noise_std: float) -> float:
    """What the DV bound converges to with the working-memory noise asymmetry, in nats.

    The joint term sees (x̃, ỹ) = (x + ε, y + ε'), the marginal term x̃ with the noise-free
    shuffled y, so the supremum of the bound is KL(p(x̃, ỹ) ‖ p(x̃) p(y)) =
    I(x̃; ỹ) + KL(p(ỹ) ‖ p(y)), and for Gaussian components of std s the second term is
    (dim/2)·(σ²/s² − log(1 + σ²/s²)): positive even for independent x and y.
    """
    ratio = noise_std**2 / pair.scale**2
    return noisy_mutual_information(pair, noise_std) + 0.5 * pair.dim * (
        ratio - math.log1p(ratio))


def seeds_of(seed: int) -> tuple[torch.Generator, torch.Generator, torch.Generator]:
    """Independent generators for (critic initialisation, data, estimator draws) of a run."""
    states = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint64)
    init, data, draws = (torch.Generator().manual_seed(int(s) >> 1) for s in states)
    return init, data, draws


@functools.cache
def train_critic(pair: GaussianPair, cfg: EstimatorConfig, n_samples: int, steps: int,
                 seed: int) -> np.ndarray:
    """Train one statistics network on `pair`; returns Î (nats) at each of `steps` steps.

    Every step draws n_samples fresh pairs (as every critic step of the paper sees a fresh
    batch) and records the bound on them *before* the update, so each value is computed on
    data the critic has not been trained on. cfg: the critic's architecture, input noise
    and optimiser (SPEC §4.3–4.4). A run is determined by its arguments, so it is trained
    once per process and its (read-only) trace reused.
    """
    init, data, draws = seeds_of(seed)
    estimator = MineEstimator(pair.dim, pair.dim, cfg, generators=init)
    optimizer = make_critic_optimizer(estimator, cfg)
    trace = np.empty(steps)
    for step in range(steps):
        x, y = pair.sample(n_samples, data)
        trace[step] = critic_step(estimator, optimizer, x[None], y[None], draws, cfg)[0]
    trace.setflags(write=False)
    return trace


def final_estimate(trace: np.ndarray, tail: float = 0.2) -> float:
    """The estimate of a run: the mean Î (nats) over the last `tail` fraction of its steps."""
    return float(np.mean(trace[-max(1, round(tail * len(trace))):]))


@dataclass(frozen=True)
class Study:
    """Runs over pairs × sample sizes × seeds.

    table: one row per run (dim, rho, transform, scale, n_samples, seed, true_mi, estimate;
    MI in nats); traces: Î per training step of each run, in table row order (runs, steps).
    """

    table: pd.DataFrame
    traces: np.ndarray

    def subset(self, **equal) -> Study:
        """The runs whose table columns equal the given values, e.g. subset(dim=5, seed=0)."""
        keep = np.ones(len(self.table), dtype=bool)
        for column, value in equal.items():
            keep &= (self.table[column] == value).to_numpy()
        return Study(self.table[keep].reset_index(drop=True), self.traces[keep])


def study(pairs: Sequence[GaussianPair], cfg: EstimatorConfig, n_samples: Sequence[int],
          steps: int, seeds: Sequence[int],
          true_mi: Callable[[GaussianPair], float] | None = None) -> Study:
    """Train a critic for every pair, sample size and seed (the same seeds at every size).

    true_mi: function pair → the value the estimate should reach, in nats (default: the
    pair's mutual information).
    """
    true_mi = true_mi or (lambda pair: pair.mutual_information)
    rows, traces = [], []
    for pair in pairs:
        for n in n_samples:
            for seed in seeds:
                trace = train_critic(pair, cfg, n, steps, seed)
                traces.append(trace)
                rows.append(dict(dim=pair.dim, rho=pair.rho, transform=pair.transform,
                                 scale=pair.scale, n_samples=n, seed=seed,
                                 true_mi=true_mi(pair), estimate=final_estimate(trace)))
    return Study(pd.DataFrame(rows), np.array(traces))


def summarise(table: pd.DataFrame, rtol: float = 0.05, atol: float = 0.01) -> pd.DataFrame:
    """Mean, spread and bias over seeds for each pair and sample size (nats).

    Columns: true_mi, mean, std (over seeds, ddof 1), sem (std/√seeds), bias (mean − true),
    relative_bias (bias/true, NaN where the true value is 0), seeds, verdict (see `verdict`).
    """
    keys = ["dim", "rho", "transform", "scale", "n_samples"]
    grouped = table.groupby(keys, sort=False)
    out = grouped.agg(true_mi=("true_mi", "first"), mean=("estimate", "mean"),
                      std=("estimate", "std"), seeds=("estimate", "size"))
    out["sem"] = (out["std"] / np.sqrt(out["seeds"])).fillna(0.0)
    out["bias"] = out["mean"] - out["true_mi"]
    out["relative_bias"] = out["bias"] / out["true_mi"].where(out["true_mi"] != 0)
    out["verdict"] = [verdict(b, s, t, rtol, atol)
                      for b, s, t in zip(out["bias"], out["sem"], out["true_mi"])]
    return out.reset_index()


def side_by_side(reference: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Two `summarise` tables of the same settings (e.g. a float32 and a bfloat16 critic):
    per setting the true value, each table's mean and spread over seeds, the difference of
    the means (other − reference) and "within spread": whether |difference| is at most the
    larger of the two spreads. Nats throughout."""
    keys = ["dim", "rho", "transform", "scale", "n_samples"]
    both = reference.merge(other, on=keys, suffixes=("", "_other"), validate="one_to_one")
    both["difference"] = both["mean_other"] - both["mean"]
    both["within spread"] = both["difference"].abs() <= np.maximum(both["std"], both["std_other"])
    return both[keys + ["true_mi", "mean", "std", "mean_other", "std_other", "difference",
                        "within spread"]]


def verdict(bias: float, sem: float, true_mi: float, rtol: float = 0.05, atol: float = 0.01,
            n_sem: float = 2.0) -> str:
    """"agrees" when |bias| ≤ max(n_sem·sem, rtol·|true|, atol), else "under-estimates" or
    "over-estimates". bias, sem and true_mi in nats; sem is the standard error over seeds.
    """
    if abs(bias) <= max(n_sem * sem, rtol * abs(true_mi), atol):
        return "agrees"
    return "under-estimates" if bias < 0 else "over-estimates"


def _nats(value: float, sign: str = "") -> str:
    """Three decimals, or two significant digits for values below 0.01 in size."""
    if value == 0 or abs(value) >= 0.01:
        return f"{value:{sign}.3f}"
    return f"{value:{sign}.1e}"


def describe(summary: pd.DataFrame) -> list[str]:
    """One sentence per row of a `summarise` table: setting, true value, estimate, verdict."""
    lines = []
    for row in summary.itertuples():
        setting = f"d = {row.dim}, ρ = {row.rho:g}, n = {row.n_samples}"
        if row.transform != "none":
            setting += f", {row.transform}d"
        if row.scale != 1:
            setting += f", std {row.scale:g}"
        relative = ("" if np.isnan(row.relative_bias)
                    else f", {100 * row.relative_bias:+.1f} %")
        spread = (f" ± {_nats(row.std)} nats over {row.seeds} seeds" if row.seeds > 1
                  else " nats (1 seed)")
        lines.append(
            f"{setting}: true {_nats(row.true_mi)} nats, estimate {_nats(row.mean)}{spread}"
            f" (bias {_nats(row.bias, '+')} nats{relative}) — **{row.verdict}**")
    return lines


def tally(summary: pd.DataFrame) -> str:
    """How many settings of a `summarise` table agree, under- or over-estimate, in words."""
    counts = summary["verdict"].value_counts()
    settings = f"{len(summary)} setting" + ("s" if len(summary) != 1 else "")
    return (f"agree with the true value: {counts.get('agrees', 0)} of {settings}; "
            f"under-estimate: {counts.get('under-estimates', 0)}; "
            f"over-estimate: {counts.get('over-estimates', 0)}")


def grid_text(summary: pd.DataFrame, n_samples: int) -> str:
    """Chapter 2's verdict on the grid (a `summarise` table at `n_samples` pairs per
    estimate): the tally, the relative bias where the true value is at most log n, how much
    of it the estimate reaches above, and a line per setting (`describe`)."""
    log_n = np.log(n_samples)
    above = summary[summary.true_mi > log_n]
    below = summary[summary.true_mi <= log_n]
    reached = above["mean"] / above.true_mi
    if len(above):
        reach = f"{reached.min():.0%}"
        if len(above) > 1:
            reach += f" to {reached.max():.0%}"
        beyond = (f"Above log n ({tally(above)}) the estimate reaches only "
                  f"{reach} of the true value.")
    else:
        beyond = "No setting has a true value above log n."
    return (f"**Verdict** at n = {n_samples} pairs per estimate — "
            f"{tally(summary)}. Where the true value is at most "
            f"log n = {log_n:.2f} nats ({tally(below)}), the relative bias lies "
            f"between {below.relative_bias.min():+.1%} and {below.relative_bias.max():+.1%}. "
            + beyond + "\n\n"
            + "\n".join("- " + line for line in describe(summary)))


def precision_text(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """A `side_by_side` table of a float32 and a bfloat16 critic as chapter 2 shows it, and its
    verdict: how far the means differ, and in how many settings within the seed spread."""
    shown = table.drop(columns=["transform", "scale", "n_samples"])
    shown["within spread"] = shown["within spread"].map({True: "yes", False: "no"})
    shown = shown.rename(columns={
        "dim": "d", "rho": "ρ", "true_mi": "true I", "mean": "float32 mean",
        "std": "float32 sd", "mean_other": "bfloat16 mean", "std_other": "bfloat16 sd",
        "difference": "bf16 − fp32"}).set_index(["d", "ρ"]).round(4)
    diff = table["difference"]
    within = int(table["within spread"].sum())
    return shown, (f"**Verdict.** The bfloat16 critic's mean differs from the float32 critic's by "
                   f"{diff.min():+.4f} to {diff.max():+.4f} nats (mean {diff.mean():+.4f}); the "
                   f"difference is within the seed spread in {within} of {len(table)} "
                   "settings (all values in nats).")
