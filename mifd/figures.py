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
