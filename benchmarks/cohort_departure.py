"""How far a `book` working-memory run trained in a cohort departs from the same run alone
(issue #39): for each seed, the cohort {λ = 0.1, λ = 0} that the stored ten-seed evidence
trained in, against each run alone, per history key over the first epochs
(`mifd.verify.cohort_departure`). Writes results/cohort_departure.json (rows, the CPU, the
commit, torch threads); the README, ARCHITECTURE and the methods page quote it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cohort_departure.py --seeds 1001 1002 1003 --epochs 50

≈ 25 min a seed on one thread of an AMD EPYC Zen 3 (200 run-epochs and three pre-trainings).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from mifd import files, store
from mifd.config import profile
from mifd.verify import cohort_departure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1001, 1002, 1003])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=store.RESULTS / "cohort_departure.json")
    args = parser.parse_args()
    base = profile("book", "wm")
    configs = [base.replace(**{"training.lambda_mi": lam}) for lam in (0.1, 0.0)]
    rows, started = [], time.perf_counter()
    for seed in tqdm(args.seeds, unit="seed"):
        with tempfile.TemporaryDirectory() as tmp:
            rows += cohort_departure(configs, [seed, seed], args.epochs, Path(tmp))
    result = {"profile": "book", "epochs": args.epochs, "seeds": args.seeds,
              "cohort": "λ = 0.1 and λ = 0 of one seed, in that order",
              "seconds": time.perf_counter() - started,
              "provenance": store.provenance({"torch_threads": torch.get_num_threads()}),
              "rows": rows}
    files.atomic_write_bytes(args.out, (json.dumps(result, indent=1) + "\n").encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
