"""Seconds per run-epoch of working-memory cohorts, beside the single-run code they replace.

A cohort of R runs trains as one computation (ARCHITECTURE.md, Cohorts). This script times
`train.epoch` (n_sm_steps critic steps, their batches through the RNNs together, then one
model step) for cohorts of several sizes at the `book` and `paper` profiles, with a float32
critic and, where the CPU does bf16 natively, a bfloat16 one, and divides by R. Half the
runs of each cohort are controls (λ = 0), as in a sweep. The reference is the single-run
code of commit `--reference` (default 41ada1b, the last before cohorts), checked out into
_build/bench-reference/ and timed in a subprocess of the same run; the ratios printed are
reference seconds / cohort seconds per run-epoch.

    .venv/bin/python benchmarks/bench_cohort.py            # everything, ≈10 min on 2 cores
    .venv/bin/python benchmarks/bench_cohort.py --book 1 20 --paper 1 --repeats 1
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from mifd import train
from mifd.config import profile
from mifd.mine import bf16_native

ROOT = Path(__file__).resolve().parent.parent

REFERENCE_SCRIPT = """
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from mifd import train
from mifd.config import profile
out = {}
for name, repeats in (("book", int(sys.argv[2])), ("paper", 1)):
    config = profile(name, "wm")
    state = train.init_wm(config, 0)
    train.epoch(state, config)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        train.epoch(state, config)
        best = min(best, time.perf_counter() - started)
    out[name] = best
print(json.dumps(out))
"""


def cohort_seconds(profile_name: str, runs: int, precision: str, repeats: int) -> float:
    """Best seconds of one epoch of a cohort of `runs` (after one warm-up epoch)."""
    config = profile(profile_name, "wm").replace(**{"estimator.precision": precision})
    configs = [config.replace(**{"training.lambda_mi": 0.1 if r % 2 == 0 else 0.0})
               for r in range(runs)]
    state = train.init_wm(configs, [1000 + r // 2 for r in range(runs)])
    train.epoch(state)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        train.epoch(state)
        best = min(best, time.perf_counter() - started)
    return best


def reference_seconds(commit: str, threads: int, repeats: int) -> dict[str, float] | None:
    """The single-run code of `commit`, timed in a subprocess: {"book": s, "paper": s}."""
    tree = ROOT / "_build" / "bench-reference" / commit
    if not tree.exists():
        made = subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit],
                              cwd=ROOT, capture_output=True, text=True)
        if made.returncode:
            print(f"reference {commit}: cannot check it out ({made.stderr.strip()})")
            return None
    result = subprocess.run([sys.executable, "-c", REFERENCE_SCRIPT, str(threads), str(repeats)],
                            cwd=tree, capture_output=True, text=True,
                            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})
    if result.returncode:
        print(f"reference {commit} failed: {result.stderr.strip().splitlines()[-1]}")
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    names = [line.split(":", 1)[1].strip() for line in text.splitlines()
             if line.startswith("model name")]
    return names[0] if names else platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs (best is kept)")
    parser.add_argument("--book", type=int, nargs="*", default=[1, 2, 5, 10, 20])
    parser.add_argument("--paper", type=int, nargs="*", default=[1, 4])
    parser.add_argument("--reference", default="41ada1b")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    precisions = ["float32"] + (["bfloat16"] if bf16_native("cpu") else [])
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"native bf16: {'yes' if len(precisions) == 2 else 'no'}")
    reference = reference_seconds(args.reference, args.threads, args.repeats)
    if reference is not None:
        print(f"reference (single-run code at {args.reference}): book {reference['book']:.2f} s, "
              f"paper {reference['paper']:.2f} s per epoch")
    print("| profile | runs | critic | s/epoch | s/run-epoch | speed-up vs reference |")
    print("|---|---|---|---|---|---|")
    for name, sizes in (("book", args.book), ("paper", args.paper)):
        for runs in sizes:
            for precision in precisions:
                seconds = cohort_seconds(name, runs, precision,
                                         args.repeats if name == "book" else 1)
                ratio = (f"{reference[name] / (seconds / runs):.2f}×" if reference else "–")
                print(f"| {name} | {runs} | {precision} | {seconds:.2f} | {seconds / runs:.3f} "
                      f"| {ratio} |", flush=True)


if __name__ == "__main__":
    main()
