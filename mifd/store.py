"""Run records on disk: one directory per (task, config hash, seed), written atomically.

Layout of a record, `results/<task>/<config hash>/seed-<seed>/`:

    config.json      the RunConfig (and its hash)
    history.json     per-epoch numbers, {name: [value per epoch]}
    snapshots.npz    parameters at the snapshot epochs, {name: (n_snapshots, ...)} + "epoch"
    provenance.json  package versions, git commit, machine, threads, wall time
    manifest.json    SHA-256 of each file above; written last, so its presence marks a
                     complete record, and a changed or truncated file is detected

While a run is in progress its cohort's `cohorts/<key>/checkpoint.pt` holds its state
(never committed while work goes on, see the README) and its own directory nothing; a run
killed at any point therefore never leaves a record that looks complete. A run that
diverged holds `failure.json` instead, saying why it stopped.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .config import RunConfig
from .files import atomic_write_bytes
from .machine import cpu

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
RECORD_FILES = ("config.json", "history.json", "snapshots.npz", "provenance.json")
MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint.pt"
FAILURE = "failure.json"


class RecordError(ValueError):
    """A record is missing, incomplete or fails its checksum."""


@dataclass(frozen=True)
class RunRecord:
    """A finished run as stored.

    history: {name: (epochs,) array}; snapshots: {parameter: (n_snapshots, ...) array};
    snapshot_epochs: (n_snapshots,) int array; provenance: versions, commit, timing.
    """

    config: RunConfig
    seed: int
    history: dict[str, np.ndarray]
    snapshots: dict[str, np.ndarray]
    snapshot_epochs: np.ndarray
    provenance: dict[str, Any]
    path: Path


def run_dir(config: RunConfig, seed: int, root: Path | None = None) -> Path:
    """The directory of (config, seed) under `root` (default: the repository's results/)."""
    base = RESULTS if root is None else Path(root)
    return base / config.task_name / config.config_hash() / f"seed-{seed}"


def cohort_id(configs, seeds) -> str:
    """12 hex digits naming the cohort of runs (configs[i], seeds[i]), in that order."""
    runs = [[c.config_hash(), int(s)] for c, s in zip(configs, seeds)]
    return hashlib.sha256(json.dumps(runs).encode()).hexdigest()[:12]


def cohort_statement(configs, seeds) -> dict[str, Any]:
    """What a record says of the cohort it trained in: {"id": `cohort_id`, "members":
    [{"task", "config_hash", "seed"}, …] in run-axis order}. Training in another cohort
    gives the same distribution of runs but not the same trajectory (see the README)."""
    return {"id": cohort_id(configs, seeds),
            "members": [{"task": c.task_name, "config_hash": c.config_hash(), "seed": int(s)}
                        for c, s in zip(configs, seeds)]}


def cohort_checkpoint(configs, seeds, root: Path | None = None) -> Path:
    """The checkpoint of the cohort of runs (configs[i], seeds[i]), in that order:
    <results>/<task>/cohorts/<cohort_id>/checkpoint.pt."""
    base = RESULTS if root is None else Path(root)
    return base / configs[0].task_name / "cohorts" / cohort_id(configs, seeds) / CHECKPOINT


def remove_empty_dirs(directory: Path) -> None:
    """Remove `directory` if it is empty (a finished cohort's checkpoint folder)."""
    try:
        Path(directory).rmdir()
    except OSError:
        pass


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub: allow_pickle
    return buffer.getvalue()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_record(
    config: RunConfig,
    seed: int,
    history: Mapping[str, list[float] | np.ndarray],
    snapshots: dict[str, np.ndarray],
    snapshot_epochs: np.ndarray,
    provenance: dict[str, Any],
    root: Path | None = None,
) -> Path:
    """Write a complete record; the manifest goes last. Returns the record's directory."""
    directory = run_dir(config, seed, root)
    (directory / MANIFEST).unlink(missing_ok=True)
    payloads = {
        "config.json": _json_bytes(
            {"config": config.to_dict(), "config_hash": config.config_hash(), "seed": seed}),
        "history.json": _json_bytes({k: np.asarray(v).tolist() for k, v in history.items()}),
        "snapshots.npz": _npz_bytes({**snapshots, "epoch": np.asarray(snapshot_epochs)}),
        "provenance.json": _json_bytes(provenance),
    }
    for name, data in payloads.items():
        atomic_write_bytes(directory / name, data)
    manifest = {name: _sha256(directory / name) for name in RECORD_FILES}
    atomic_write_bytes(directory / MANIFEST, _json_bytes(manifest))
    return directory


def record_failure(directory: Path, failure: dict[str, Any]) -> None:
    """Write `failure` ({"reason": ..., ...}) as the run's failure.json, atomically."""
    atomic_write_bytes(Path(directory) / FAILURE, _json_bytes(failure))


def read_failure(directory: Path) -> dict[str, Any] | None:
    """The recorded failure of a run, or None."""
    path = Path(directory) / FAILURE
    return json.loads(path.read_text()) if path.exists() else None


def is_complete(directory: Path) -> bool:
    """True if the record's manifest exists (it is written last)."""
    return (Path(directory) / MANIFEST).exists()


def verify(directory: Path) -> None:
    """Raise RecordError naming the file if the record is incomplete or a checksum differs."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        raise RecordError(f"{directory}: incomplete record (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise RecordError(f"{manifest_path}: unreadable manifest ({error})") from None
    for name in RECORD_FILES:
        path = directory / name
        if not path.exists():
            raise RecordError(f"{path}: missing file of a complete record")
        if _sha256(path) != manifest.get(name):
            raise RecordError(f"{path}: checksum differs from {MANIFEST}; the file was changed")


# index names of separation records written before both tasks spelled them alike
LEGACY_NAMES = {"Q_cor": "Q_corr", "D_cor": "D_corr"}


RECOVERED_COHORTS = "recovered_cohorts.json"


@lru_cache(maxsize=8)
def _recovered_cohorts(path: Path, mtime: float) -> dict[str, Any]:
    return json.loads(path.read_text())["records"]


def recovered_cohort(directory: Path) -> dict[str, Any] | None:
    """The cohort of a record stored before records named their own, from the results
    folder's `recovered_cohorts.json` (keyed "<task>/<hash>/seed-<seed>"; "recovered" says
    how it is known), or None."""
    directory = Path(directory)
    index = directory.parents[2] / RECOVERED_COHORTS if len(directory.parents) > 2 else None
    if index is None or not index.exists():
        return None
    key = "/".join(directory.parts[-3:])
    return _recovered_cohorts(index, index.stat().st_mtime).get(key)


def load_record(directory: Path) -> RunRecord:
    """Load a verified record (raises RecordError if incomplete or altered). A record that
    does not name its cohort gets its `recovered_cohort`, where there is one, as
    provenance["cohort"]."""
    directory = Path(directory)
    verify(directory)
    meta = json.loads((directory / "config.json").read_text())
    history = {LEGACY_NAMES.get(k, k): np.asarray(v)
               for k, v in json.loads((directory / "history.json").read_text()).items()}
    with np.load(directory / "snapshots.npz") as data:
        snapshots = {k: data[k] for k in data.files if k != "epoch"}
        epochs = data["epoch"]
    provenance = json.loads((directory / "provenance.json").read_text())
    if "cohort" not in provenance:
        recovered = recovered_cohort(directory)
        if recovered is not None:
            provenance["cohort"] = recovered
    return RunRecord(
        config=RunConfig.from_dict(meta["config"]),
        seed=int(meta["seed"]),
        history=history,
        snapshots=snapshots,
        snapshot_epochs=epochs,
        provenance=provenance,
        path=directory,
    )


def find_record(config: RunConfig, seed: int, root: Path | None = None) -> RunRecord | None:
    """The stored record of (config, seed), or None if there is no complete one."""
    directory = run_dir(config, seed, root)
    return load_record(directory) if is_complete(directory) else None


def git_commit(root: Path = ROOT) -> str:
    """The repository's HEAD commit, with "+dirty" if tracked files outside results/ (the
    code, not the stored records) differ from it, or "unknown" outside git. $MIFD_GIT_COMMIT,
    where set, names it instead: the commit a copy of the tree was made from (the lent GPU
    machine's copy carries a stale repository)."""
    if os.environ.get("MIFD_GIT_COMMIT"):
        return os.environ["MIFD_GIT_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)results"],
                               cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty.strip() else "")


def provenance(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions, commit and machine of this process, plus `extra` (e.g. timing)."""
    import scipy
    import torch

    from . import __version__

    return {
        "mifd": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        **(extra or {}),
    }
