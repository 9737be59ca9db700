"""The two tasks of the paper as plain array producers (SPEC §3); no model code here.

* `wm_batch`: the 2-bit flip-flop working memory (SPEC §3.1); `wm_onsets` and
  `wm_from_onsets` split it into its random draw and the arithmetic, so a cohort draws
  each run's onsets from its own stream and computes every run's batches at once.
* `lorenz` / `rossler` / `integrate` / `normalise`: the chaotic sources (SPEC §3.2);
  `chaos_trajectories` generates them from explicit seeds and caches each one on disk as
  float32; `separation_batch` mixes Lorenz and Rössler into input L + R and target [L, R].
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy.integrate import solve_ivp

from .config import SeparationTaskConfig, WMTaskConfig
from .store import atomic_write_bytes

ON_CHANNELS = (0, 2)
OFF_CHANNELS = (1, 3)


@dataclass(frozen=True)
class WMBatch:
    """One working-memory batch over transient + learning steps, T = n_transient + n_learn.

    inputs:  (batch, T, 4) float32, channels [bit-1 ON, bit-1 OFF, bit-2 ON, bit-2 OFF].
    targets: (batch, T, 2) float32, target[k] = y(k + 1) (the one-step lead, SPEC §10.10).
    bits:    (batch, T + 1, 2) int8, the latched bit s(t) in {-1, +1} for t = 0..T.
    onsets:  (batch, T + 2, 4) bool, pulse onsets as drawn.
    """

    inputs: np.ndarray
    targets: np.ndarray
    bits: np.ndarray
    onsets: np.ndarray


def wm_batch(cfg: WMTaskConfig, rng: np.random.Generator, n_batches: int = 1) -> WMBatch:
    """Draw `n_batches` fresh working-memory batches from `rng` (SPEC §3.1), stacked along
    the sequence axis: the arrays equal those of `n_batches` calls one after another,
    concatenated (the onsets are drawn in one call of the same size).

    Onsets are drawn independently with probability `onset_prob` per sequence, channel and
    index for T + 2 indices; a pulse holds amplitude `amplitude` for `pulse_length` steps
    from its onset. The bit latches to +1 on an ON onset, else to -1 on an OFF onset (ON
    wins a tie); s(0) = +1 only if an ON onset falls at 0. The target ramps by
    `slope`·s(t) per step from y(0) = 0, clipped to [-1, 1].
    """
    return wm_from_onsets(cfg, wm_onsets(cfg, rng, n_batches))


def wm_onsets(cfg: WMTaskConfig, rng: np.random.Generator, n_batches: int = 1) -> np.ndarray:
    """The random part of `n_batches` batches: (n_batches·batch, T + 2, 4) bool onsets."""
    n_steps = cfg.n_transient + cfg.n_learn
    return rng.random((n_batches * cfg.batch_size, n_steps + 2, 4)) < cfg.onset_prob


def wm_from_onsets(cfg: WMTaskConfig, onsets: np.ndarray) -> WMBatch:
    """Pulses, latched bits and target ramps of any number of sequences' onsets at once
    (e.g. the batches of every run of a cohort): onsets (sequences, T + 2, 4) bool."""
    n_steps = cfg.n_transient + cfg.n_learn
    inputs = cfg.amplitude * _pulses(onsets[:, : n_steps], cfg.pulse_length)
    on = onsets[:, : n_steps + 1, ON_CHANNELS]
    off = onsets[:, : n_steps + 1, OFF_CHANNELS]
    bits = _latched_bits(on, off)
    trace = _ramp(bits, cfg.slope)
    return WMBatch(
        inputs=inputs.astype(np.float32),
        targets=trace[:, 1:].astype(np.float32),
        bits=bits,
        onsets=onsets,
    )


def _pulses(onsets: np.ndarray, length: int) -> np.ndarray:
    """(batch, T, C) bool onsets -> (batch, T, C) float32 0/1: 1 within `length` steps of an
    onset (steps t′ … t′ + length − 1 for an onset at t′, cut at T). Onsets are rare, so
    each one's window is written directly (a cumulative count over time is ≈40× slower)."""
    pulses = np.zeros(onsets.shape, dtype=np.float32)
    seq, step, channel = np.nonzero(onsets)
    last = onsets.shape[1] - 1
    for lag in range(length):
        pulses[seq, np.minimum(step + lag, last), channel] = 1.0
    return pulses


def _latched_bits(on: np.ndarray, off: np.ndarray) -> np.ndarray:
    """(batch, T+1, 2) ON/OFF onsets -> the latched bit in {-1, +1}; ON wins a tie.

    The index of the last event up to each step is a running maximum over time, taken in a
    time-major copy (along a strided axis it is several times slower)."""
    on, off = on.transpose(1, 0, 2), off.transpose(1, 0, 2)
    events = on.astype(np.int8) - (off & ~on).astype(np.int8)  # +1 ON, -1 OFF, 0 none
    events[0] = np.where(on[0], 1, -1)
    steps = np.arange(events.shape[0], dtype=np.int32)[:, None, None]
    last_event = np.where(events != 0, steps, 0)
    np.maximum.accumulate(last_event, axis=0, out=last_event)
    return np.take_along_axis(events, last_event, axis=0).transpose(1, 0, 2)


def _ramp(bits: np.ndarray, slope: float) -> np.ndarray:
    """y(0) = 0 and y(t) = clip(y(t-1) + slope·s(t), -1, 1): (batch, T+1, 2) float64.

    A loop over time (each step's rounding depends on the last), over all sequences at once,
    in a time-major buffer so that each step reads and writes contiguous rows."""
    steps = slope * np.ascontiguousarray(bits.transpose(1, 0, 2), dtype=np.float64)
    trace = np.zeros_like(steps)
    for t in range(1, steps.shape[0]):
        np.add(trace[t - 1], steps[t], out=trace[t])
        np.clip(trace[t], -1.0, 1.0, out=trace[t])
    return trace.transpose(1, 0, 2)


# --- chaotic sources -------------------------------------------------------------------

SYSTEMS = ("lorenz", "rossler")


def lorenz(cfg: SeparationTaskConfig) -> Callable[[float, np.ndarray], list[float]]:
    """Right-hand side of the Lorenz system with (σ, ρ, β) from `cfg`."""
    s, r, b = cfg.lorenz_sigma, cfg.lorenz_rho, cfg.lorenz_beta

    def f(_t: float, v: np.ndarray) -> list[float]:
        x, y, z = v
        return [s * (y - x), x * (r - z) - y, x * y - b * z]

    return f


def rossler(cfg: SeparationTaskConfig) -> Callable[[float, np.ndarray], list[float]]:
    """Right-hand side of the Rössler system with (a, b, c) from `cfg`."""
    a, b, c = cfg.rossler_a, cfg.rossler_b, cfg.rossler_c

    def f(_t: float, v: np.ndarray) -> list[float]:
        x, y, z = v
        return [-y - z, x + a * y, b + z * (x - c)]

    return f


def integrate(
    system: str, x0: np.ndarray, cfg: SeparationTaskConfig, rtol: float | None = None,
    atol: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """RK45 from `x0` over [0, t_end] at `n_samples` equally spaced times (SPEC §3.2).

    Returns (times (n_samples,), states (n_samples, 3)) in the system's own units.
    `rtol`/`atol` override the configured tolerances (tests use a tight reference).
    """
    rhs, t_end = _system(system, cfg)
    times = np.linspace(0.0, t_end, cfg.n_samples)
    sol = solve_ivp(
        rhs, (0.0, t_end), np.asarray(x0, dtype=np.float64), method="RK45", t_eval=times,
        rtol=cfg.rtol if rtol is None else rtol, atol=cfg.atol if atol is None else atol,
    )
    if not sol.success:
        raise RuntimeError(f"{system} integration failed: {sol.message}")
    return times, sol.y.T


def _system(system: str, cfg: SeparationTaskConfig):
    if system == "lorenz":
        return lorenz(cfg), cfg.lorenz_t_end
    if system == "rossler":
        return rossler(cfg), cfg.rossler_t_end
    raise ValueError(f"system must be one of {SYSTEMS}, got {system!r}")


def normalise(states: np.ndarray, n_discard: int) -> np.ndarray:
    """Min–max scale each variable to [0, 1] over all samples, then drop the first `n_discard`.

    states: (n_samples, 3) -> (n_samples - n_discard, 3).
    """
    low = states.min(axis=0)
    span = states.max(axis=0) - low
    span[span == 0] = 1.0
    return ((states - low) / span)[n_discard:]


def initial_condition(system: str, seed: int, index: int) -> np.ndarray:
    """The U[0, 1)^3 initial state of trajectory `index` of `system` under data seed `seed`."""
    system_id = SYSTEMS.index(system)
    return np.random.default_rng([seed, system_id, index]).uniform(0.0, 1.0, size=3)


def cache_dir() -> Path:
    """Where generated trajectories are cached: $MIFD_CACHE, else ~/.cache/mifd."""
    return Path(os.environ.get("MIFD_CACHE", Path.home() / ".cache" / "mifd"))


def _cache_path(system: str, cfg: SeparationTaskConfig, index: int) -> Path:
    """Cache file of one trajectory, keyed by every setting that shapes it."""
    settings = {
        k: v for k, v in dataclasses.asdict(cfg).items()
        if k.startswith(system) or k in ("n_samples", "n_discard", "rtol", "atol", "data_seed")
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "chaos" / f"{system}-{key}" / f"{index}.npy"


def chaos_trajectories(
    system: str, indices: Sequence[int], cfg: SeparationTaskConfig
) -> np.ndarray:
    """Normalised trajectories `indices` of `system`: (len(indices), seq_len, 3) float32.

    Trajectory i starts from `initial_condition(system, cfg.data_seed, i)`; each one is
    integrated once and cached as a float32 .npy (seq_len × 3 × 4 bytes).
    """
    out = np.empty((len(indices), cfg.seq_len, 3), dtype=np.float32)
    for row, index in enumerate(indices):
        path = _cache_path(system, cfg, int(index))
        if path.exists():
            out[row] = np.load(path)
            continue
        x0 = initial_condition(system, cfg.data_seed, int(index))
        _, states = integrate(system, x0, cfg)
        out[row] = normalise(states, cfg.n_discard)
        buffer = io.BytesIO()
        np.save(buffer, out[row])
        atomic_write_bytes(path, buffer.getvalue())
    return out


@dataclass(frozen=True)
class SeparationBatch:
    """inputs: (batch, seq_len, 3) = L + R; targets: (batch, seq_len, 6) = [Lx, Ly, Lz, Rx, Ry, Rz]."""

    inputs: np.ndarray
    targets: np.ndarray


def separation_batch(indices: Sequence[int], cfg: SeparationTaskConfig) -> SeparationBatch:
    """Pairs `indices` of the data set: Lorenz trajectory i mixed with Rössler trajectory i."""
    lor = chaos_trajectories("lorenz", indices, cfg)
    ros = chaos_trajectories("rossler", indices, cfg)
    return SeparationBatch(inputs=lor + ros, targets=np.concatenate([lor, ros], axis=-1))


def held_out_indices(cfg: SeparationTaskConfig) -> np.ndarray:
    """The fixed test pairs: the `n_test` indices right after the training pool."""
    return np.arange(cfg.pool_size, cfg.pool_size + cfg.n_test)
