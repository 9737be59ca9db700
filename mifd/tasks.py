"""The two tasks of the paper as plain array producers (SPEC §3); no model code here.

* `wm_batch`: the 2-bit flip-flop working memory (SPEC §3.1); `wm_onsets` (numpy, each
  run's own stream; `cohort_onsets` for a cohort) and `wm_signals` (torch, on the cohort's
  device) split it into its random draw and the arithmetic, so a cohort draws each run's
  onsets from its own stream and computes every run's batches at once.
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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

from .config import SeparationTaskConfig, WMTaskConfig
from .files import atomic_write_bytes

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


def cohort_onsets(cfg: WMTaskConfig, rngs: Sequence[np.random.Generator], n_batches: int = 1,
                  workers: int = 1) -> np.ndarray:
    """`wm_onsets` of every run of a cohort from its own stream, concatenated along the
    sequence axis: (runs·n_batches·batch, T + 2, 4) bool. With `workers` > 1 the runs are
    drawn on that many threads (numpy releases the GIL while it fills large arrays; each
    stream is used by one thread, in its own order), which is what keeps a GPU cohort's
    epoch from waiting on its batches."""
    if workers < 2 or len(rngs) < 2:
        return np.concatenate([wm_onsets(cfg, rng, n_batches) for rng in rngs])
    with ThreadPoolExecutor(min(workers, len(rngs))) as pool:
        return np.concatenate(list(pool.map(lambda rng: wm_onsets(cfg, rng, n_batches), rngs)))


def wm_signals(cfg: WMTaskConfig, onsets: torch.Tensor, targets: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Pulses, latched bits and target ramps of any number of sequences' onsets at once,
    computed where the onsets are (a cohort's GPU, or the CPU): onsets (S, T + 2, 4) bool.

    Returns inputs (S, T, 4) float32, and with `targets` the targets (S, T, 2) float32 and
    the latched bits (S, T + 1, 2) int8 (else None for both: the critic's batches need no
    targets). Every value is exactly what the rules of `wm_batch` give, on any device: the
    pulses and bits are integer arithmetic, the ramp adds and clips in float64 step by step.
    """
    n_steps = cfg.n_transient + cfg.n_learn
    inputs = cfg.amplitude * _pulses(onsets[:, :n_steps], cfg.pulse_length)
    if not targets:
        return inputs, None, None
    bits = _latched_bits(onsets[:, : n_steps + 1, ON_CHANNELS],
                         onsets[:, : n_steps + 1, OFF_CHANNELS])
    trace = _ramp(bits, cfg.slope)
    return inputs, trace[:, 1:].to(torch.float32), bits


def wm_from_onsets(cfg: WMTaskConfig, onsets: np.ndarray) -> WMBatch:
    """`wm_signals` on the CPU as a `WMBatch` of numpy arrays: onsets (sequences, T + 2, 4)
    bool (e.g. the batches of every run of a cohort)."""
    inputs, targets, bits = wm_signals(cfg, torch.from_numpy(onsets))
    assert targets is not None and bits is not None  # asked for
    return WMBatch(inputs=inputs.numpy(), targets=targets.numpy(), bits=bits.numpy(),
                   onsets=onsets)


def _pulses(onsets: torch.Tensor, length: int) -> torch.Tensor:
    """(S, T, C) bool onsets -> (S, T, C) float32 0/1: 1 within `length` steps of an onset
    (steps t′ … t′ + length − 1 for an onset at t′, cut at T), i.e. where the count of
    onsets over the last `length` steps (a difference of running counts) is positive."""
    count = onsets.cumsum(1, dtype=torch.int32)
    window = count.clone()
    window[:, length:] -= count[:, :-length]
    return (window > 0).to(torch.float32)


def _latched_bits(on: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
    """(S, T+1, 2) bool ON/OFF onsets -> the latched bit in {-1, +1}, int8; ON wins a tie.
    The index of the last event up to each step is a running maximum over time."""
    events = on.to(torch.int8) - (off & ~on).to(torch.int8)  # +1 ON, -1 OFF, 0 none
    events[:, 0] = torch.where(on[:, 0], 1, -1).to(torch.int8)
    steps = torch.arange(events.shape[1], device=events.device).view(1, -1, 1)
    last_event = torch.where(events != 0, steps, 0).cummax(dim=1).values
    return events.gather(1, last_event)


def _ramp(bits: torch.Tensor, slope: float) -> torch.Tensor:
    """y(0) = 0 and y(t) = clip(y(t-1) + slope·s(t), -1, 1): (S, T+1, 2) float64.

    A loop over time (each step's rounding depends on the last), over all sequences at once,
    in a time-major buffer so that each step reads and writes contiguous rows."""
    steps = slope * bits.transpose(0, 1).to(torch.float64).contiguous()
    trace = torch.zeros_like(steps)
    y, s = trace.unbind(0), steps.unbind(0)
    for t in range(1, len(y)):
        torch.add(y[t - 1], s[t], out=y[t]).clamp_(-1.0, 1.0)
    return trace.transpose(0, 1)


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
    system: str, indices: Sequence[int] | np.ndarray, cfg: SeparationTaskConfig
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


def separation_batch(indices: Sequence[int] | np.ndarray, cfg: SeparationTaskConfig) -> SeparationBatch:
    """Pairs `indices` of the data set: Lorenz trajectory i mixed with Rössler trajectory i."""
    lor = chaos_trajectories("lorenz", indices, cfg)
    ros = chaos_trajectories("rossler", indices, cfg)
    return SeparationBatch(inputs=lor + ros, targets=np.concatenate([lor, ros], axis=-1))


def held_out_indices(cfg: SeparationTaskConfig) -> np.ndarray:
    """The fixed test pairs: the `n_test` indices right after the training pool."""
    return np.arange(cfg.pool_size, cfg.pool_size + cfg.n_test)
