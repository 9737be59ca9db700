"""One function per figure: each takes data and returns a matplotlib Figure; no metrics here."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .tasks import OFF_CHANNELS, ON_CHANNELS

SOURCE_LABELS = ("Lorenz x", "Lorenz y", "Lorenz z", "Rössler x", "Rössler y", "Rössler z")


def wm_task(inputs: np.ndarray, targets: np.ndarray, n_transient: int,
            outputs: np.ndarray | None = None) -> Figure:
    """The paper's Figure 4 layout for one sequence: ON/OFF pulses and target of each bit.

    inputs: (T, 4); targets: (T, 2); outputs: optional (T, 2) network output drawn solid.
    Panels A/C show the pulses of bit 1/2, B/D the target (dashed) and output; the first
    `n_transient` steps, which are not scored, are shaded.
    """
    steps = np.arange(inputs.shape[0])
    fig, axes = plt.subplots(4, 1, figsize=(9, 7), sharex=True,
                             gridspec_kw={"height_ratios": [1, 1.6, 1, 1.6]})
    for bit in range(2):
        ax_in, ax_out = axes[2 * bit], axes[2 * bit + 1]
        ax_in.plot(steps, inputs[:, ON_CHANNELS[bit]], color="tab:red", label=f"ON{bit + 1}")
        ax_in.plot(steps, -inputs[:, OFF_CHANNELS[bit]], color="black", label=f"OFF{bit + 1} (drawn negative)")
        ax_in.set_ylabel("input")
        ax_in.set_ylim(-1.3, 1.3)
        ax_in.legend(loc="upper right", fontsize="small", ncol=2)
        if outputs is not None:
            ax_out.plot(steps, outputs[:, bit], color="tab:blue", label="output")
        ax_out.plot(steps, targets[:, bit], color="tab:orange", ls="--", label="target")
        ax_out.set_ylabel(f"bit {bit + 1}")
        ax_out.set_ylim(-1.3, 1.3)
        ax_out.legend(loc="upper right", fontsize="small")
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
    fig = plt.figure(figsize=(10, 4.5))
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
    fig, axes = plt.subplots(3, 3, figsize=(11, 6.5), sharex=True)
    for var, name in enumerate("xyz"):
        axes[0, var].plot(samples, inputs[:, var], color="tab:purple", lw=0.7)
        axes[0, var].set_title(f"input {name} = Lorenz {name} + Rössler {name}")
        axes[1, var].plot(samples, targets[:, var], color="tab:blue", lw=0.7)
        axes[1, var].set_title(f"target: {SOURCE_LABELS[var]}")
        axes[2, var].plot(samples, targets[:, 3 + var], color="tab:red", lw=0.7)
        axes[2, var].set_title(f"target: {SOURCE_LABELS[3 + var]}")
        axes[2, var].set_xlabel(
            f"sample (Lorenz Δt = {dt_lorenz:.3g}, Rössler Δt = {dt_rossler:.3g} time units)",
            fontsize="small")
    for row, label in enumerate(("input (a.u., in [0, 2])", "normalised value", "normalised value")):
        axes[row, 0].set_ylabel(label)
    fig.tight_layout()
    return fig


CONDITION_COLORS = ("tab:blue", "tab:gray", "tab:green", "tab:purple")


def learning_curves(curves: dict[str, dict[str, np.ndarray]], ylabels: dict[str, str],
                    xlabel: str = "epoch (= model updates)",
                    ylims: dict[str, tuple[float | None, float | None]] | None = None) -> Figure:
    """Panels of training curves: each run thin, the mean over runs thick, a colour per condition.

    curves: {quantity: {condition label: (n_runs, epochs) array}}; ylabels: {quantity: label};
    ylims: optional {quantity: (bottom, top)} display range (None keeps matplotlib's).
    """
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), squeeze=False)
    for ax, (quantity, by_condition) in zip(axes[0], curves.items()):
        for color, (label, values) in zip(CONDITION_COLORS, by_condition.items()):
            epochs = np.arange(1, values.shape[1] + 1)
            ax.plot(epochs, values.T, color=color, lw=0.5, alpha=0.3)
            ax.plot(epochs, values.mean(axis=0), color=color, lw=2,
                    label=f"{label} (mean of {values.shape[0]})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabels[quantity])
        if ylims and quantity in ylims:
            ax.set_ylim(*ylims[quantity])
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def mine_training_curves(traces: dict[str, np.ndarray], true_values: dict[str, float]) -> Figure:
    """MINE estimate per training step (one line per label) and its true value (dashed).

    traces: label → (steps,) Î in nats; true_values: label → the known value in nats.
    """
    fig, ax = plt.subplots(figsize=(8, 4))
    for (label, trace), color in zip(traces.items(), plt.cm.tab10.colors):
        ax.plot(np.arange(len(trace)), trace, color=color, lw=0.8, alpha=0.8, label=label)
        ax.axhline(true_values[label], color=color, ls="--", lw=1.2)
    ax.set_xlabel("training step (critic updates)")
    ax.set_ylabel("estimate Î (nats)")
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
    for value, color in zip(np.unique(groups), plt.cm.tab10.colors):
        sel = groups == value
        ax.errorbar(true_mi[sel], mean[sel], yerr=std[sel], fmt="o", color=color, capsize=3,
                    label=f"{group_label} = {value}")
    top = 1.05 * max(true_mi.max(), (mean + std).max())
    ax.plot([0, top], [0, top], color="0.4", lw=1, label="estimate = true")
    ax.axhline(log_n, color="0.4", ls=":", lw=1, label="log n")
    ax.set_xlim(0, top)
    ax.set_ylim(min(0, (mean - std).min()), top)
    ax.set_xlabel("true I(x; y) (nats)")
    ax.set_ylabel("MINE estimate (nats)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def mine_sample_size(n_samples: np.ndarray, bias: np.ndarray, std: np.ndarray) -> Figure:
    """Bias (mean − true, ± std over seeds) and spread (std over seeds) against sample size.

    n_samples, bias, std: one entry per sample size; bias and std in nats.
    """
    fig, (ax_bias, ax_std) = plt.subplots(1, 2, figsize=(10, 4))
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
        ax.set_xlabel("sample size n (pairs per estimate)")
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
    ax.plot(scales, offset, color="tab:blue", label="closed form KL(p(ỹ) ‖ p(y))")
    ax.errorbar(measured_scales, measured, yerr=measured_std, fmt="o", color="tab:red",
                capsize=3, label="MINE, independent groups")
    ax.axvline(noise_std, color="0.5", ls=":", lw=1, label=f"noise std σ = {noise_std:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("std s of each activity component (activity units)")
    ax.set_ylabel("spurious estimate for independent groups (nats)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
