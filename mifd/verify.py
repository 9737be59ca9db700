"""Does a stored record regenerate here? Re-train its first epochs and compare.

A record is regenerable from its recorded commit on the same processor, bit for bit; on
another processor torch and MKL may pick other kernels (other vector widths, other
summation orders), and the numbers agree only to rounding, which training then amplifies.
`verify` re-trains the first N epochs of a stored record with this checkout's code, alone,
and reports the largest relative difference of every per-epoch history value, and whether
this machine, this code and the record's cohort match those that made the record.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from . import store


def compare_histories(stored: dict[str, np.ndarray], fresh: dict[str, np.ndarray],
                      epochs: int) -> dict[str, Any]:
    """Largest relative difference |a − b| / max(|a|, |b|) over the first `epochs` entries
    of every history entry both have; identical when every value agrees bit for bit."""
    worst, worst_key, first_epoch = 0.0, None, None
    for key in sorted(set(stored) & set(fresh)):
        a = np.asarray(stored[key], float)[:epochs]
        b = np.asarray(fresh[key], float)[:epochs]
        differs = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        if differs.any():
            e = int(np.argmax(differs))
            first_epoch = e + 1 if first_epoch is None else min(first_epoch, e + 1)
            scale = np.maximum(np.abs(a), np.abs(b))
            relative = np.where(differs, np.abs(a - b) / np.where(scale > 0, scale, 1), 0.0)
            relative[np.isnan(a) != np.isnan(b)] = np.inf  # a value against no value
            if relative.max() > worst:
                worst, worst_key = float(np.nanmax(relative)), key
    return {"identical": first_epoch is None, "largest_relative_difference": worst,
            "in": worst_key, "first_differing_epoch": first_epoch}


def verify(path: Path, epochs: int = 2) -> dict[str, Any]:
    """Re-train the first `epochs` epochs of the record at `path` here (alone, into a
    temporary folder) and compare; returns the comparison with the circumstances."""
    from .sweep import TRAINERS

    record = store.load_record(Path(path))
    if not 0 < epochs <= record.config.training.epochs:
        raise ValueError(f"--epochs must lie in 1…{record.config.training.epochs} "
                         f"(the record's epochs), got {epochs}")
    config = record.config.replace(**{"training.epochs": epochs})
    with tempfile.TemporaryDirectory() as tmp:
        fresh = TRAINERS[config.task_name](config, record.seed, root=Path(tmp), progress=False)
    here = store.cpu()
    made = record.provenance.get("cpu")
    return {
        "epochs": epochs, **compare_histories(record.history, fresh.history, epochs),
        "record_commit": record.provenance.get("git_commit", "unknown"),
        "this_commit": store.git_commit(),
        "record_cpu": made, "this_cpu": here,
        "same_cpu": None if made is None else made == here,
        "record_cohort_runs": int(record.provenance.get("cohort_runs", 1)),
    }


def report(result: dict[str, Any]) -> str:
    """The verification as a few lines for the command line."""
    if result["identical"]:
        outcome = f"bit-identical over the first {result['epochs']} epochs"
    else:
        outcome = (f"differs from epoch {result['first_differing_epoch']} on; largest relative "
                   f"difference {result['largest_relative_difference']:.3g} (in {result['in']}) "
                   f"over the first {result['epochs']} epochs")
    same = {None: "the record does not name its processor",
            True: "this processor is the record's",
            False: "this processor differs from the record's"}[result["same_cpu"]]
    lines = [outcome, f"{same} (here: {describe_cpu(result['this_cpu'])}"
             + (f"; record: {describe_cpu(result['record_cpu'])})" if result["record_cpu"] else ")")]
    if result["record_commit"].split("+")[0] != result["this_commit"].split("+")[0]:
        lines.append(f"the record was made at {result['record_commit'][:12]}, this code is "
                     f"{result['this_commit'][:12]}: check out the record's commit to regenerate it")
    if result["record_cohort_runs"] > 1:
        lines.append(f"the record was trained in a cohort of {result['record_cohort_runs']} runs; "
                     "re-trained alone it agrees to rounding (about 1e-5 relative), not bit for bit")
    return "\n".join(lines)


def describe_cpu(cpu: dict[str, Any]) -> str:
    return (f"{store.cpu_name(cpu)}, "
            f"{' '.join(cpu['vector_extensions']) or 'no AVX'}, torch {cpu['torch_capability']}")
