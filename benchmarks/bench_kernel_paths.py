"""What forcing torch's, MKL's and oneDNN's kernel paths costs.

A record regenerates bit for bit only on the processor that made it; pinning the libraries to
one instruction set (`ATEN_CPU_CAPABILITY=avx2`, `MKL_CBWR=COMPATIBLE` or `AVX2`,
`ONEDNN_MAX_CPU_ISA=AVX2`) is the obvious way to make records portable, and the methods page
says whether it does. This script measures its price: the same short `book` training (seed
1003, λ = 0.1, its 100 critic pre-training steps and `--epochs` epochs) in a fresh process per
setting, timed by the run's own provenance, with the default kernels as the reference.

    .venv/bin/python benchmarks/bench_kernel_paths.py --epochs 8 --repeats 2   # ≈ 6 min
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = {
    "default kernels": {},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "ATEN_CPU_CAPABILITY=avx2, MKL_CBWR=AVX2, ONEDNN_MAX_CPU_ISA=AVX2": {
        "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}


def seconds_per_epoch(env: dict[str, str], epochs: int, threads: int) -> float:
    """Train seconds / epochs of one short run in a fresh process with `env` added."""
    with tempfile.TemporaryDirectory() as results:
        subprocess.run(
            [sys.executable, "-m", "mifd", "train", "wm", "--profile", "book", "--seed", "1003",
             "--lambda-mi", "0.1", "--set", f"training.epochs={epochs}", "--results", results,
             "--quiet"],
            env={**os.environ, "OMP_NUM_THREADS": str(threads), **env}, check=True,
            stdout=subprocess.DEVNULL)
        provenance = next(Path(results).glob("wm/*/seed-1003/provenance.json"))
        return json.loads(provenance.read_text())["seconds_per_epoch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from mifd import machine

    cpu = machine.cpu()
    print(f"{cpu['model_name']} {cpu['family_model_stepping']}, {' '.join(cpu['vector_extensions'])}, "
          f"torch capability {cpu['torch_capability']}, {args.threads} threads, {args.epochs} epochs "
          f"(with the 100 pre-training steps), best of {args.repeats}")
    times = {name: min(seconds_per_epoch(env, args.epochs, args.threads) for _ in range(args.repeats))
             for name, env in SETTINGS.items()}
    reference = times["default kernels"]
    print("| setting | s/epoch | time vs default |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {t:.2f} | {t / reference:.2f}× |")


if __name__ == "__main__":
    main()
