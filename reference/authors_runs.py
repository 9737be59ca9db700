"""Runs of the authors' working-memory code, stored as mifd records (project side).

For each seed, `reference/authors_run.py` trains their model with their own functions in
the TensorFlow environment (_build/tf-venv), in resumable 25-epoch chunks under
_build/reference-runs/; a finished run becomes a mifd record under results/reference/ in
mifd's format, so that mifd's analysis reads it like its own:

* history: their per-epoch losses under mifd's names (`HISTORY_NAMES`);
* snapshots: their weight record (W_rec, W_in, W_out every 25 epochs, epoch 0 included);
  it holds no biases, so every snapshot carries the run's final biases b and b_out (as
  their own analysis uses them); provenance says so;
* config: the `paper` profile with the run's λ (what their gp_wm.py sets; the profile's
  source table names each setting's file in their repository);
* provenance: their repository and commit, this driver's commit, TensorFlow's and
  tf-keras's versions, the processor, threads, seconds per epoch, and `died_at`, the first
  epoch whose loss or training Î was not finite (None if none).

    .venv/bin/python -m reference.authors_runs --checkout PATH --seeds 1-3 --lambda-mi 0.1

A run interrupted in any way resumes from its last chunk when the same command is given
again. Cost: one of their epochs took 6.8 s on a 2-vCPU Intel Xeon 6/207 and 11.4 s on a
Zen 4 with two threads (../shared/PERFORMANCE.md): 2–3.3 h a 1000-epoch run.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from mifd import machine, store
from mifd.cli import _seeds as seed_list
from mifd.config import RunConfig, profile

from .step_differential import (
    REPOSITORY,
    TF_PACKAGES,
    checkout_commit,
    require_checkout,
)
from .tf_venv import tensorflow_python

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "reference"
WORK = ROOT / "_build" / "reference-runs"
DRIVER = Path(__file__).with_name("authors_run.py")
# their loss list → mifd's history key
HISTORY_NAMES = {"total": "loss", "task": "mse", "accs": "accuracy", "regularizer": "l2",
                 "mi_before": "mi_before", "mi_after": "mi_after"}


def run_config(lambda_mi: float, epochs: int) -> RunConfig:
    """The mifd settings their gp_wm.py sets, with the run's λ and length."""
    return profile("paper", "wm").replace(**{"training.lambda_mi": lambda_mi,
                                             "training.epochs": epochs})


def record_arrays(arrays: dict[str, np.ndarray]
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """(history, snapshots, snapshot epochs) in mifd's names and layouts from the driver's
    run.npz arrays; every snapshot gets the final biases."""
    history = {ours: np.asarray(arrays[f"loss_{theirs}"], dtype=np.float64)
               for theirs, ours in HISTORY_NAMES.items()}
    epochs = np.asarray(arrays["snapshot_epoch"], dtype=np.int64)
    n = len(epochs)
    snapshots = {name: np.asarray(arrays[f"snapshot_{name}"], dtype=np.float32)
                 for name in ("w_in", "w_rec", "w_out")}
    snapshots["b"] = np.repeat(arrays["final_b"][None].astype(np.float32), n, axis=0)
    snapshots["b_out"] = np.repeat(arrays["final_b_out"][None].astype(np.float32), n, axis=0)
    return history, snapshots, epochs


def first_death(history: dict[str, np.ndarray]) -> int | None:
    """The first epoch (1-based) whose loss or training Î is not finite, else None."""
    bad = np.flatnonzero(~(np.isfinite(history["loss"]) & np.isfinite(history["mi_before"])))
    return int(bad[0]) + 1 if len(bad) else None


def store_run(run: Path, config: RunConfig, seed: int, commit: str, threads: int,
              root: Path = RESULTS) -> Path:
    """Turn a finished driver folder into a mifd record under `root` (results/reference/)."""
    meta = json.loads((run / "run.json").read_text())
    with np.load(run / "run.npz") as data:
        history, snapshots, epochs = record_arrays({k: data[k] for k in data.files})
    done = meta["epochs_done"]
    provenance = {
        "implementation": f"the authors' TensorFlow code ({REPOSITORY})",
        "repository": REPOSITORY, "repository_commit": commit,
        "git_commit": store.git_commit(), "driver": "reference/authors_run.py",
        "tensorflow": meta["tensorflow"], "tf_keras": meta["tf_keras"],
        "set_by_driver": meta["set"], "cpu": machine.cpu(), "threads": threads,
        "python": platform.python_version(), "train_seconds": meta["seconds"],
        "seconds_per_epoch": meta["seconds"] / max(done, 1), "epochs_done": done,
        "died_at": first_death(history),
        "biases": "their weight record holds no biases: every snapshot carries the final b "
                  "and b_out",
        "random_streams": "their noise generators are not seeded: the seed sets the initial "
                          "weights and the task's numpy draws only"}
    return store.save_record(config, seed, history, snapshots, epochs, provenance, root)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, required=True,
                        help=f"work tree of {REPOSITORY}")
    parser.add_argument("--commit", help="its commit, when the checkout has no .git")
    parser.add_argument("--seeds", type=seed_list, required=True, help="e.g. 7 or 1-3")
    parser.add_argument("--lambda-mi", type=float, required=True)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    require_checkout(parser, args.checkout)
    if args.lambda_mi < 0 or args.epochs <= 0 or args.epochs % 25:
        parser.error("--lambda-mi must be ≥ 0 and --epochs a positive multiple of 25")
    commit = checkout_commit(args.checkout, args.commit)
    python = tensorflow_python(TF_PACKAGES)
    if python is None:
        sys.exit(1)
    config = run_config(args.lambda_mi, args.epochs)
    for seed in args.seeds:
        if store.is_complete(store.run_dir(config, seed, RESULTS)):
            print(f"seed {seed}: stored")
            continue
        run = WORK / config.config_hash() / f"seed-{seed}"
        command = [str(python), str(DRIVER), str(args.checkout.resolve()), str(run),
                   "--seed", str(seed), "--lambda-mi", str(args.lambda_mi),
                   "--epochs", str(args.epochs), "--threads", str(args.threads)]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as process:
            for line in process.stderr:
                if line.startswith("[driver]") or "resumed after" in line:
                    print(f"seed {seed}: {line.strip().removeprefix('[driver] ')}", flush=True)
            process.wait()
        if process.returncode:
            sys.exit(f"seed {seed}: the authors' run stopped (exit {process.returncode}); "
                     f"the same command resumes it from {run}/state")
        directory = store_run(run, config, seed, commit, args.threads)
        shutil.rmtree(run)
        print(f"seed {seed}: stored {directory.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
