"""The GPU check: the cohort training tests on CUDA, then seconds per epoch of paper-profile
working-memory cohorts of 1, 10 and 40 runs with a float32 and a bfloat16 critic.

Meant for the device machine the project is lent for some issues (one run of under 8
minutes; see benchmarks/README.md for the last output):

    python benchmarks/gpu_check.py            # on the GPU machine, in the repository root

Step 1 runs the training tests that take a device (`MIFD_TEST_DEVICE=cuda`: a cohort of four
against the four runs alone, a diverging run inside a cohort, a killed and resumed run);
step 2 times one warm-up and `--repeats` epochs of each cohort (no critic pre-training),
with torch.cuda.synchronize() around each, and prints a markdown table. Exits 1 when the
tests fail, 2 without a CUDA GPU.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def run_tests() -> bool:
    env = dict(os.environ, MIFD_TEST_DEVICE="cuda")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:nbval",
                             "-o", "addopts=", "tests/test_train.py", "-k", "device"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    tail = "\n".join(result.stdout.strip().splitlines()[-3:])
    print(f"training tests on CUDA ({time.perf_counter() - started:.0f} s):\n{tail}", flush=True)
    return result.returncode == 0


def epoch_seconds(runs: int, precision: str, repeats: int) -> float:
    from mifd import train
    from mifd.config import profile

    config = profile("paper", "wm").replace(**{"estimator.precision": precision})
    configs = [config.replace(**{"training.lambda_mi": 0.1 if r % 2 == 0 else 0.0})
               for r in range(runs)]
    state = train.init_wm(configs, [1000 + r // 2 for r in range(runs)], device="cuda")
    train.epoch(state)
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        train.epoch(state)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    del state
    torch.cuda.empty_cache()
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 40])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA GPU here", file=sys.stderr)
        return 2
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}", flush=True)
    ok = args.skip_tests or run_tests()
    print("| runs | critic | s/epoch | s/run-epoch |\n|---|---|---|---|", flush=True)
    for runs in args.sizes:
        for precision in ("float32", "bfloat16"):
            seconds = epoch_seconds(runs, precision, args.repeats)
            print(f"| {runs} | {precision} | {seconds:.2f} | {seconds / runs:.3f} |", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
