"""One function per figure: each takes data and returns a matplotlib Figure; no metrics here.

Every figure is drawn for the book's text column: at most `COLUMN` inches wide at the nominal
100 pixels per inch the page shows it at, with fonts sized for that width. In a notebook the
inline backend renders at twice that resolution ("retina": 200 dpi) and tells the page the
nominal size, so nothing is shrunk to fit and nothing is blurred. Tables show every cell whole
(pandas would cut a cell after 50 characters, the claims tables' numbers among them). A
chapter sets all of that with `book_style()`; importing this module changes no setting.
"""
from __future__ import annotations

from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .tasks import OFF_CHANNELS, ON_CHANNELS

SOURCE_LABELS = ("Lorenz x", "Lorenz y", "Lorenz z", "Rössler x", "Rössler y", "Rössler z")
COLUMN = 7.5  # inches: the widest figure, 750 px at 100 dpi in the book's ≈790 px column
TAB10 = [mpl.colors.to_hex(mpl.colormaps["tab10"](i)) for i in range(10)]  # the tab10 colours

# One spelling of every index, as the text writes it (mathtext in figures).
INDEX_LABELS = {
    "Q_corr": r"$Q_\mathrm{corr}$", "Q_str": r"$Q_\mathrm{str}$", "D_corr": r"$D_\mathrm{corr}$",
    "D_in": r"$D_\mathrm{in}$", "D_out": r"$D_\mathrm{out}$",
}


def book_style() -> None:
    """The book's look, for a chapter to set before it draws or shows a table: fonts sized for
    figures `COLUMN` inches wide at 100 dpi, PNGs at twice that resolution in a notebook
    (shown at the nominal size), and table cells shown whole."""
    mpl.rcParams.update({"figure.dpi": 100, "savefig.dpi": 200, "font.size": 9,
                         "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
                         "xtick.labelsize": 8, "ytick.labelsize": 8})
    pd.set_option("display.max_colwidth", None)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # pragma: no cover - outside Jupyter
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def _panel_grid(n: int, columns: int | None, height: float) -> tuple[Figure, np.ndarray]:
    """n panels in rows of `columns` (at most 3, default min(n, 2)), COLUMN inches wide."""
    columns = min(columns or min(n, 2), 3, n)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(COLUMN, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def _legend_below(fig: Figure, handles, labels, columns: int = 3) -> None:
    """One legend for the whole figure, under its panels, so it covers no data."""
    fig.legend(handles, labels, loc="lower center", ncol=columns, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    rows = -(-len(labels) // columns)
    fig.tight_layout(rect=(0, min(0.4, (0.06 + 0.2 * rows) / fig.get_figheight()), 1, 1))


def _group_handles(n_units: int) -> tuple[list, list[str]]:
    names = _group_legend_labels(n_units)
    handles = [Line2D([], [], ls="", marker=m, markerfacecolor="none", markeredgecolor=c)
               for m, c in (("o", "tab:blue"), ("^", "tab:red"))]
    return handles, list(names)


def wm_task(inputs: np.ndarray, targets: np.ndarray, n_transient: int,
            outputs: np.ndarray | None = None) -> Figure:
    """The paper's Figure 4 layout for one sequence: ON/OFF pulses and target of each bit.

    inputs: (T, 4); targets: (T, 2); outputs: optional (T, 2) network output drawn solid.
    Panels A/C show the pulses of bit 1/2, B/D the target (dashed) and output; the first
    `n_transient` steps, which are not scored, are shaded.
    """
    steps = np.arange(inputs.shape[0])
    fig, axes = plt.subplots(4, 1, figsize=(COLUMN, 6), sharex=True,
                             gridspec_kw={"height_ratios": [1, 1.6, 1, 1.6]})
    for bit in range(2):
        ax_in, ax_out = axes[2 * bit], axes[2 * bit + 1]
        ax_in.plot(steps, inputs[:, ON_CHANNELS[bit]], color="tab:red", label=f"ON{bit + 1}")
        ax_in.plot(steps, -inputs[:, OFF_CHANNELS[bit]], color="black", label=f"OFF{bit + 1}\n(drawn negative)")
        ax_in.set_ylabel("input")
        ax_in.set_ylim(-1.3, 1.3)
        ax_in.legend(loc="upper left", bbox_to_anchor=(1.0, 1.05), frameon=False)
        if outputs is not None:
            ax_out.plot(steps, outputs[:, bit], color="tab:blue", label="output")
        ax_out.plot(steps, targets[:, bit], color="tab:orange", ls="--", label="target")
        ax_out.set_ylabel(f"bit {bit + 1}")
        ax_out.set_ylim(-1.3, 1.3)
        ax_out.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        for ax in (ax_in, ax_out):
            ax.axvspan(0, n_transient, color="0.85", zorder=0)
    for ax, letter in zip(axes, "ABCD"):
        ax.text(-0.07, 1.0, letter, transform=ax.transAxes, fontweight="bold", va="top")
    axes[1].text(n_transient / 2, 1.1, "transient (not scored)", ha="center", fontsize="small")
    axes[-1].set_xlabel("time step")
    fig.tight_layout()
    return fig


def attractors(lorenz: np.ndarray, rossler: np.ndarray) -> Figure:
    """Normalised Lorenz and Rössler trajectories (each (T, 3)) as 3-D curves."""
    fig = plt.figure(figsize=(COLUMN, 3.6))
    for col, (name, traj, color) in enumerate(
        (("Lorenz", lorenz, "tab:blue"), ("Rössler", rossler, "tab:red"))
    ):
        ax = fig.add_subplot(1, 2, col + 1, projection="3d")
        ax.plot(traj[:, 0], traj[:, 1], traj[:, 2], lw=0.3, color=color)
        ax.set_title(f"{name} (min–max normalised)")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_zlabel("z")
    fig.tight_layout()
    return fig


def separation_signals(inputs: np.ndarray, targets: np.ndarray, dt_lorenz: float,
                       dt_rossler: float) -> Figure:
    """The mixed input L + R (T, 3) and the six targets (T, 6) of one sequence over samples.

    The top axis converts samples to Lorenz and Rössler time units (Δt per sample given).
    """
    samples = np.arange(inputs.shape[0])
    fig, axes = plt.subplots(3, 3, figsize=(COLUMN, 5.8), sharex=True)
    for var, name in enumerate("xyz"):
        axes[0, var].plot(samples, inputs[:, var], color="tab:purple", lw=0.7)
        axes[0, var].set_title(f"input {name}: Lorenz + Rössler")
        axes[1, var].plot(samples, targets[:, var], color="tab:blue", lw=0.7)
        axes[1, var].set_title(f"target: {SOURCE_LABELS[var]}")
        axes[2, var].plot(samples, targets[:, 3 + var], color="tab:red", lw=0.7)
        axes[2, var].set_title(f"target: {SOURCE_LABELS[3 + var]}")
    for row, label in enumerate(("input (in [0, 2])", "normalised value", "normalised value")):
        axes[row, 0].set_ylabel(label)
    fig.supxlabel(f"sample (Lorenz Δt = {dt_lorenz:.3g}, Rössler Δt = {dt_rossler:.3g} time units)")
    fig.tight_layout()
    return fig


CONDITION_COLORS = ("tab:blue", "tab:gray", "tab:green", "tab:purple")


def learning_curves(curves: dict[str, dict[str, np.ndarray]], ylabels: dict[str, str],
                    xlabel: str = "epoch (= model updates)",
                    ylims: dict[str, tuple[float | None, float | None]] | None = None,
                    x: np.ndarray | dict[str, np.ndarray] | None = None,
                    columns: int | None = None) -> Figure:
    """Panels of training curves: each run thin, the mean over runs thick, a colour per condition.

    curves: {quantity: {condition label: (n_runs, n_points) array}}; ylabels: {quantity: label};
    ylims: optional {quantity: (bottom, top)} display range (None keeps matplotlib's);
    x: the (n_points,) abscissa (default epochs 1…n_points), or {quantity: abscissa} when the
    panels have their own; columns: panels per row (at most 3). One legend under the panels names the conditions.
    """
    fig, axes = _panel_grid(len(curves), columns, 2.6)
    legend: dict[str, Line2D] = {}
    for ax, (quantity, by_condition) in zip(axes.flat, curves.items()):
        for color, (label, values) in zip(CONDITION_COLORS, by_condition.items()):
            given = x.get(quantity) if isinstance(x, dict) else x
            epochs = np.arange(1, values.shape[1] + 1) if given is None else given
            ax.plot(epochs, values.T, color=color, lw=0.5, alpha=0.3)
            line, = ax.plot(epochs, values.mean(axis=0), color=color, lw=2)
            legend.setdefault(f"{label}: each run thin, mean of {values.shape[0]} thick", line)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabels[quantity])
        if ylims and quantity in ylims:
            ax.set_ylim(*ylims[quantity])
    _legend_below(fig, list(legend.values()), list(legend), columns=1 if len(legend) > 2 else 2)
    return fig


def critic_collapses(estimates: dict[str, np.ndarray], shares: dict[str, np.ndarray],
                     threshold: float, window: int) -> Figure:
    """Where the training critic collapses, per condition (the first drawn on top).

    estimates: {condition: (runs, epochs) training Î in nats}; shares: {condition: (runs,
    windows) share of each window of `window` epochs with Î below `threshold` nats}. Left:
    the median Î over the runs at each epoch (a collapse in one run does not drag it off the
    axis), the threshold dashed; right: the collapse share per window, each run thin and the
    mean thick.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(COLUMN, 3.0))
    legend = {}
    items = list(zip(CONDITION_COLORS, estimates.items(), shares.values()))
    for z, (color, (label, mi), share) in enumerate(reversed(items)):
        epochs = np.arange(1, mi.shape[1] + 1)
        line, = left.plot(epochs, np.median(mi, axis=0), color=color, lw=1, zorder=2 + z)
        centres = window * (np.arange(share.shape[1]) + 0.5)
        right.plot(centres, share.T, color=color, lw=0.5, alpha=0.35, zorder=2 + z)
        right.plot(centres, share.mean(axis=0), color=color, lw=2, marker="o", ms=3, zorder=2 + z)
        legend[f"{label}: {mi.shape[0]} runs"] = line
    left.axhline(threshold, color="black", ls="--", lw=0.8)
    left.set_ylim(threshold - 0.5, None)
    left.set_xlabel("epoch")
    left.set_ylabel(r"median training $\hat I$ over runs (nats)")
    right.set_xlabel(f"epoch (windows of {window})")
    right.set_ylabel(rf"share of epochs with $\hat I < {threshold:g}$ nats")
    right.set_ylim(0, None)
    labels = list(legend)[::-1]
    _legend_below(fig, [legend[k] for k in labels], labels, columns=2)
    return fig


def profile_courses(courses: pd.DataFrame, ylabels: dict[str, str]) -> Figure:
    """Index courses of the same seeds at two profiles, one panel per index.

    courses: a DataFrame with one row per (profile, condition, seed, epoch) and a column per
    key of `ylabels`; colour = condition, line style = profile (the first solid), one line
    per seed, so courses of different lengths (e.g. 300 and 1000 epochs) share an axis.
    """
    fig, axes = _panel_grid(len(ylabels), 2, 2.6)
    styles = dict(zip(courses["profile"].unique(), ("-", "--", ":")))
    colors = dict(zip(courses["condition"].unique(), CONDITION_COLORS))
    for ax, (quantity, ylabel) in zip(axes.flat, ylabels.items()):
        for (profile, condition, seed), course in courses.groupby(
                ["profile", "condition", "seed"], sort=False):
            course = course.sort_values("epoch")
            ax.plot(course["epoch"], course[quantity], color=colors[condition],
                    ls=styles[profile], lw=1.2, label=f"{profile}, {condition}, seed {seed}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
    handles = ([Line2D([], [], color=c, lw=1.5) for c in colors.values()]
               + [Line2D([], [], color="0.3", ls=ls, lw=1.2) for ls in styles.values()])
    labels = list(colors) + [f"profile {p}" for p in styles]
    _legend_below(fig, handles, labels, columns=len(labels) if len(labels) <= 4 else 3)
    return fig


def dose_response(finals: pd.DataFrame, setting: str, ylabels: dict[str, str], xlabel: str,
                  hue: str | None = None, linthresh: float | None = None, columns: int = 2,
                  hue_label: str | None = None) -> Figure:
    """Final values against a setting (e.g. λ), one panel per key of `ylabels`.

    finals: one row per run with columns `setting`, "seed", the keys of `ylabels` and, when
    given, `hue` (a colour per value, e.g. c_L1, named `hue_label` in the legend). Each seed is a thin line across the
    setting's values, the mean over seeds a thick line with ± 1 sd bars. The x axis is
    logarithmic; with `linthresh` it is linear below it (symlog), so a setting of 0 (the
    control) has a place, and every panel spans the same settings; `columns`: panels per row
    (at most 3). The legend gives the runs per setting (a range where settings differ).
    """
    fig, axes = _panel_grid(len(ylabels), columns, 2.5)
    hues = [None] if hue is None else sorted(finals[hue].unique())
    legend: dict[str, Any] = {}  # label → the errorbar container that stands for it
    for ax, (quantity, ylabel) in zip(axes.flat, ylabels.items()):
        for color, value in zip(CONDITION_COLORS, hues):
            part = finals if value is None else finals[finals[hue] == value]
            for _, run in part.groupby("seed"):
                run = run.sort_values(setting)
                ax.plot(run[setting], run[quantity], color=color, lw=0.6, alpha=0.35)
            stats = part.groupby(setting)[quantity].agg(["mean", "std", "size"]).sort_index()
            line = ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), color=color,
                               lw=2, marker="o", ms=4, capsize=3)
            low, high = int(stats["size"].min()), int(stats["size"].max())
            name = ("each seed thin" if value is None
                    else f"{hue_label or hue} = {value:g}: each seed thin")
            legend.setdefault(f"{name}, mean ± sd of {low if low == high else f'{low}–{high}'} thick", line)
        if linthresh is None:
            ax.set_xscale("log")
        else:
            ax.set_xscale("symlog", linthresh=linthresh)
            if finals[setting].min() >= 0:   # every panel the same range, from just left of 0
                ax.set_xlim(-linthresh / 2, max(finals[setting].max() * 1.5, linthresh))
        if not np.isfinite(finals[quantity].to_numpy(float)).any():
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    _legend_below(fig, list(legend.values()), list(legend), columns=1)
    return fig


def mine_training_curves(traces: dict[str, np.ndarray], true_values: dict[str, float]) -> Figure:
    """MINE estimate per training step (one line per label) and its true value (dashed).

    traces: label → (steps,) Î in nats; true_values: label → the known value in nats.
    """
    fig, ax = plt.subplots(figsize=(COLUMN, 3.8))
    for (label, trace), color in zip(traces.items(), TAB10):
        ax.plot(np.arange(len(trace)), trace, color=color, lw=0.8, alpha=0.8, label=label)
        ax.axhline(true_values[label], color=color, ls="--", lw=1.2)
    ax.set_xlabel("training step (critic updates)")
    ax.set_ylabel(r"estimate $\hat I$ (nats)")
    ax.set_title("MINE estimate during training; dashed: true mutual information")
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return fig


def mine_estimate_vs_true(true_mi: np.ndarray, mean: np.ndarray, std: np.ndarray,
                          groups: np.ndarray, group_label: str, log_n: float) -> Figure:
    """Estimated against true mutual information (nats), mean ± std over seeds.

    Points are coloured by `groups` (e.g. the dimension d, named by group_label); the
    diagonal is a perfect estimate and the dotted line marks log n of the sample size.
    """
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for value, color in zip(np.unique(groups), TAB10):
        sel = groups == value
        ax.errorbar(true_mi[sel], mean[sel], yerr=std[sel], fmt="o", color=color, capsize=3,
                    label=f"{group_label} = {value}")
    top = 1.05 * max(true_mi.max(), (mean + std).max())
    ax.plot([0, top], [0, top], color="0.4", lw=1, label="estimate = true")
    ax.axhline(log_n, color="0.4", ls=":", lw=1, label=r"$\log n$")
    ax.set_xlim(0, top)
    ax.set_ylim(min(0, (mean - std).min()), top)
    ax.set_xlabel(r"true $I(x; y)$ (nats)")
    ax.set_ylabel("MINE estimate (nats)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def mine_sample_size(n_samples: np.ndarray, bias: np.ndarray, std: np.ndarray) -> Figure:
    """Bias (mean − true, ± std over seeds) and spread (std over seeds) against sample size.

    n_samples, bias, std: one entry per sample size; bias and std in nats.
    """
    fig, (ax_bias, ax_std) = plt.subplots(1, 2, figsize=(COLUMN, 3.2))
    ax_bias.errorbar(n_samples, bias, yerr=std, fmt="o-", capsize=3)
    ax_bias.axhline(0, color="0.4", lw=1)
    ax_bias.set_ylabel("bias: mean estimate − true (nats)")
    ax_std.plot(n_samples, std, "o-")
    ax_std.set_yscale("log")
    ax_std.set_ylabel("std of the estimate over seeds (nats)")
    for ax, letter in ((ax_bias, "A"), (ax_std, "B")):
        ax.set_xscale("log")
        ax.set_xticks(n_samples, [str(n) for n in n_samples])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel(r"sample size $n$ (pairs per estimate)")
        ax.set_title(letter, loc="left", fontweight="bold")
    fig.tight_layout()
    return fig


def mine_noise_asymmetry(scales: np.ndarray, offset: np.ndarray, measured_scales: np.ndarray,
                         measured: np.ndarray, measured_std: np.ndarray, noise_std: float
                         ) -> Figure:
    """Spurious nats added by the working-memory noise asymmetry against the activity's std.

    scales, offset: the closed form (nats) on a grid of component std s; measured_scales,
    measured, measured_std: MINE estimates for independent groups (mean ± std over seeds).
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(scales, offset, color="tab:blue", label=r"closed form $\mathrm{KL}(p(\tilde y)\,\|\,p(y))$")
    ax.errorbar(measured_scales, measured, yerr=measured_std, fmt="o", color="tab:red",
                capsize=3, label="MINE, independent groups")
    ax.axvline(noise_std, color="0.5", ls=":", lw=1, label=rf"noise std $\sigma$ = {noise_std:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"std $s$ of each activity component (activity units)")
    ax.set_ylabel("spurious estimate for independent groups (nats)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _group_legend_labels(n_units: int) -> tuple[str, str]:
    half = n_units // 2
    return f"G1 (units 0–{half - 1})", f"G2 (units {half}–{n_units - 1})"


def correlation_scatter(panels: dict[str, np.ndarray], groups: np.ndarray,
                        axis_labels: tuple[str, str] = (
                            r"$|c^{(1)}_i|$: |corr($x_i$, bit-1 target)|",
                            r"$|c^{(2)}_i|$: |corr($x_i$, bit-2 target)|")) -> Figure:
    """The paper's Figure 5: each neuron's strength towards sub-task 1 against sub-task 2,
    a panel per condition.

    panels: {condition label: (N, 2) magnitudes or correlations (absolute values are drawn)};
    groups: (N,) 0/1 labels, drawn as circles (G1) and triangles (G2); axis_labels: x and y.
    """
    fig, axes = _panel_grid(len(panels), None, 3.7)
    names = _group_legend_labels(len(groups))
    for ax, letter, (label, c) in zip(axes.flat, "ABCD", panels.items()):
        magnitude = np.abs(c)
        for g, (marker, color) in enumerate((("o", "tab:blue"), ("^", "tab:red"))):
            sel = groups == g
            ax.scatter(magnitude[sel, 0], magnitude[sel, 1], marker=marker, facecolors="none",
                       edgecolors=color, label=names[g])
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls=":")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
        ax.set_title(label)
        ax.set_title(letter, loc="left", fontweight="bold")
    _legend_below(fig, *_group_handles(len(groups)), columns=2)
    return fig


def _group_boundaries(ax, n_units: int, vertical: bool = True, horizontal: bool = True,
                      color: str = "white") -> None:
    """Lines between G1 and G2 (white on the dark end of viridis, black on a diverging map)."""
    edge = n_units / 2 - 0.5
    if vertical:
        ax.axvline(edge, color=color, lw=1.2, ls="--")
    if horizontal:
        ax.axhline(edge, color=color, lw=1.2, ls="--")


def correlation_matrices(panels: dict[str, np.ndarray], label: str = r"corr($x_i$, $x_j$)",
                         signed: bool = True) -> Figure:
    """Neuron–neuron correlation matrices (N, N) side by side, group boundary marked;
    `label` names the colour bar, `signed` chooses a [−1, 1] or a [0, 1] scale."""
    fig, axes = _panel_grid(len(panels), None, 3.3)
    for ax, (title, matrix) in zip(axes.flat, panels.items()):
        image = ax.imshow(matrix, cmap="RdBu_r" if signed else "viridis",
                          vmin=-1 if signed else 0, vmax=1)
        _group_boundaries(ax, matrix.shape[0], color="black" if signed else "white")
        ax.set_title(title)
        ax.set_xlabel("neuron j")
        ax.set_ylabel("neuron i")
        fig.colorbar(image, ax=ax, label=label, shrink=0.8)
    fig.tight_layout()
    return fig


def weight_magnitudes(w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray,
                      title: str) -> Figure:
    """|W_in| (4, N) above |W_rec| (N, N), with |W_out| (N, 2) to its right; one colour scale
    per matrix, the group boundary marked."""
    n = w_rec.shape[0]
    fig = plt.figure(figsize=(6.4, 7.0))
    grid = fig.add_gridspec(3, 3, width_ratios=[n, 5, 1.2], height_ratios=[7, n, 1.2],
                            wspace=0.12, hspace=0.12)
    ax_in, ax_rec, ax_out = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0]), \
        fig.add_subplot(grid[1, 1])
    bars = {"in": fig.add_subplot(grid[0, 2]), "rec": fig.add_subplot(grid[2, 0]),
            "out": fig.add_subplot(grid[1, 2])}
    for ax, matrix, key, name in ((ax_in, w_in, "in", r"$|W_\mathrm{in}|$"),
                                  (ax_rec, w_rec, "rec", r"$|W_\mathrm{rec}|$"),
                                  (ax_out, w_out, "out", r"$|W_\mathrm{out}|$")):
        image = ax.imshow(np.abs(matrix), cmap="viridis", aspect="auto")
        fig.colorbar(image, cax=bars[key], label=name,
                     orientation="horizontal" if key == "rec" else "vertical")
    _group_boundaries(ax_in, n, horizontal=False)
    _group_boundaries(ax_rec, n)
    _group_boundaries(ax_out, n, vertical=False)
    ax_in.set_yticks(range(4), ["ON1", "OFF1", "ON2", "OFF2"])
    ax_in.set_xticks([])
    ax_in.set_title(title)
    ax_rec.set_xlabel("postsynaptic neuron j", labelpad=2)
    ax_rec.set_ylabel("presynaptic neuron i")
    ax_out.set_xticks([0, 1], ["1", "2"])
    ax_out.set_xlabel("bit")
    ax_out.set_yticks([])
    bars["rec"].set_position(bars["rec"].get_position().translated(0, -0.06))
    return fig


def recurrent_weights(panels: dict[str, np.ndarray], near_zero: float) -> Figure:
    """|W_rec| (N, N), row = presynaptic, one panel per condition (title: its label), three to
    a row, on one colour scale up to the 99th percentile of every panel's magnitudes; weights
    below `near_zero` are white, so sparsity shows, and whether it follows the groups (dashed)."""
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(COLUMN, 2.5 * rows + 0.3), squeeze=False,
                             layout="constrained")
    magnitudes = {title: np.abs(w_rec) for title, w_rec in panels.items()}
    vmax = np.percentile(np.concatenate([m.ravel() for m in magnitudes.values()]), 99)
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    for k, (ax, (title, magnitude)) in enumerate(zip(axes.flat, magnitudes.items())):
        image = ax.imshow(np.ma.masked_less(magnitude, near_zero), cmap=cmap, vmin=0, vmax=vmax)
        _group_boundaries(ax, magnitude.shape[0], color="black")
        ax.set_title(title, fontsize="medium")
        if k % columns == 0:
            ax.set_ylabel("presynaptic neuron i")
        if k + columns >= len(panels):
            ax.set_xlabel("postsynaptic neuron j")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes, shrink=0.8, extend="max",
                 label=rf"$|W_\mathrm{{rec}}|$ (white: below {near_zero:.3g})")
    return fig


def specialisation_scatter(d: np.ndarray, differences: dict[str, np.ndarray], r,
                           groups: np.ndarray, title: str) -> Figure:
    """d_i = |c_i^(1)| − |c_i^(2)| against weight differences (e.g. d_out, d_in), with their
    Pearson r in the panel titles.

    d: (N,); differences: {axis label: (N,)}; r: one correlation per difference, in order;
    groups: (N,) 0/1 (circles / triangles).
    """
    fig, axes = _panel_grid(len(differences), None, 3.3)
    names = _group_legend_labels(len(groups))
    for ax, (label, values), r_value in zip(axes.flat, differences.items(), r):
        for g, (marker, color) in enumerate((("o", "tab:blue"), ("^", "tab:red"))):
            sel = groups == g
            ax.scatter(values[sel], d[sel], marker=marker, facecolors="none", edgecolors=color,
                       label=names[g])
        ax.set_title(f"Pearson r = {r_value:.2f}")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_xlabel(label)
        ax.set_ylabel(r"$d_i = |c^{(1)}_i| - |c^{(2)}_i|$")
    fig.suptitle(title)
    _legend_below(fig, *_group_handles(len(groups)), columns=2)
    return fig


def block_weight_distributions(panels: dict[str, np.ndarray], groups: np.ndarray) -> Figure:
    """Complementary cumulative distributions of |W_rec| per block (G1→G1, G1→G2, …).

    panels: {condition label: W_rec (N, N), row = presynaptic}; groups: (N,) 0/1. Log y
    shows the tails, where within-group and between-group weights differ.
    """
    fig, axes = _panel_grid(len(panels), None, 3.0)
    for ax, (label, w_rec) in zip(axes.flat, panels.items()):
        magnitude = np.abs(w_rec)
        for (pre, post), color in zip(((0, 0), (0, 1), (1, 0), (1, 1)), TAB10):
            block = np.sort(magnitude[np.ix_(groups == pre, groups == post)].ravel())
            survival = 1 - np.arange(block.size) / block.size
            ax.step(block, survival, where="post", color=color,
                    label=rf"$G_{pre + 1}\to G_{post + 1}$ (mean {block.mean():.3f})")
        ax.set_yscale("log")
        ax.set_xlabel(r"$|W_\mathrm{rec}|$ (weight magnitude)")
        ax.set_title(label)
        ax.legend(loc="lower left")
    axes[0, 0].set_ylabel("fraction of weights ≥ value")
    fig.tight_layout()
    return fig


def separation_outputs(targets: np.ndarray, outputs: np.ndarray, washout: int,
                       steps: int | None = None) -> Figure:
    """The six outputs (solid) against their targets (dashed) on one test sequence.

    targets, outputs: (T, 6) in the order Lorenz x, y, z, Rössler x, y, z; the first
    `washout` steps (not in the loss) are shaded; `steps` limits the drawn window.
    """
    steps = steps or targets.shape[0]
    t = np.arange(steps)
    fig, axes = plt.subplots(3, 2, figsize=(COLUMN, 5.6), sharex=True)
    for k in range(6):
        ax = axes[k % 3, k // 3]
        ax.plot(t, targets[:steps, k], color="0.4", ls="--", lw=1, label="target")
        ax.plot(t, outputs[:steps, k], color="tab:blue" if k < 3 else "tab:red", lw=1,
                label="output")
        ax.axvspan(0, washout, color="0.9", zorder=0)
        ax.set_title(SOURCE_LABELS[k])
        ax.set_ylabel("normalised value")
    for ax in axes[-1]:
        ax.set_xlabel("time step (sample)")
    handles = [Line2D([], [], color="0.4", ls="--"), Line2D([], [], color="tab:blue"),
               Line2D([], [], color="tab:red"), Patch(color="0.9")]
    _legend_below(fig, handles, ["target", "output (Lorenz)", "output (Rössler)",
                                 "washout (not in the loss)"], columns=4)
    return fig


def community_graph(adjacency: np.ndarray, groups: np.ndarray, labels: np.ndarray,
                    title: str, seed: int = 0) -> Figure:
    """Spring layout of the strongest half of the edges of a weighted graph (N, N): node
    colour = detected community (`labels`), marker = predefined group (circle G1, triangle G2)."""
    import networkx as nx

    a = np.array(adjacency, dtype=float)
    upper = a[np.triu_indices_from(a, k=1)]
    a[a < np.median(upper[upper > 0])] = 0
    graph = nx.from_numpy_array(a)
    position = nx.spring_layout(graph, seed=seed, weight="weight")
    fig, ax = plt.subplots(figsize=(5.0, 5.0))
    nx.draw_networkx_edges(graph, position, ax=ax, alpha=0.08, width=0.5)
    names = _group_legend_labels(len(groups))
    for g, marker in enumerate("o^"):
        nodes = [i for i in graph.nodes if groups[i] == g]
        nx.draw_networkx_nodes(graph, position, nodelist=nodes, node_shape=marker, ax=ax,
                               node_size=45, node_color=[("tab:blue", "tab:red")[labels[i]]
                                                         for i in nodes], label=names[g])
    ax.set_title(title)
    ax.set_axis_off()
    group_handles, group_names = _group_handles(len(groups))
    handles = [Line2D([], [], ls="", marker=h.get_marker(), color="0.3") for h in group_handles] + [
        Patch(color="tab:blue"), Patch(color="tab:red")]
    _legend_below(fig, handles, group_names + ["detected community 1", "detected community 2"],
                  columns=2)
    return fig


def separation_weights(w_out: np.ndarray, u_h: np.ndarray, title: str) -> Figure:
    """|W_out| (6, N) above |U_h| (the GRU's candidate recurrent block, given as torch stores
    it, post × pre, and drawn pre × post like the working-memory |W_rec|), group boundary
    marked."""
    n = u_h.shape[0]
    fig, (ax_out, ax_u) = plt.subplots(2, 1, figsize=(5.6, 7),
                                       gridspec_kw={"height_ratios": [1.2, 6]})
    image = ax_out.imshow(np.abs(w_out), cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax_out, label=r"$|W_\mathrm{out}|$", pad=0.02)
    _group_boundaries(ax_out, n, horizontal=False)
    ax_out.set_yticks(range(6), SOURCE_LABELS)
    ax_out.set_xticks([])
    ax_out.set_title(title)
    image = ax_u.imshow(np.abs(u_h).T, cmap="viridis")
    fig.colorbar(image, ax=ax_u, label=r"$|U_h|$", pad=0.02, shrink=0.8)
    _group_boundaries(ax_u, n)
    ax_u.set_xlabel("postsynaptic unit j")
    ax_u.set_ylabel("presynaptic unit i")
    fig.tight_layout()
    return fig


def output_bias_courses(courses: dict[str, dict[str, np.ndarray]], start: dict[str, float]
                        ) -> Figure:
    """The critic's output bias over repeated critic steps on one batch, one panel per case.

    courses: {case: {implementation: (steps,) bias after each step}}; start: {case: the bias
    both started from}. The bound does not depend on this bias, so its exact gradient is 0."""
    fig, axes = _panel_grid(len(courses), 2, 2.6)
    for ax, (case, lines) in zip(axes.flat, courses.items()):
        for (name, values), color in zip(lines.items(), ("C0", "C3")):
            steps = np.arange(0, len(values) + 1)
            ax.plot(steps, np.concatenate([[start[case]], values]), color=color, lw=1.5,
                    marker="o", ms=2, label=name)
        ax.set_title(case, fontsize=8)
        ax.set_xlabel("critic steps on the same batch")
        ax.set_ylabel("output bias of the critic")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    _legend_below(fig, handles, labels, columns=2)
    return fig
