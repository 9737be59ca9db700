"""Seconds per working-memory training epoch at the `book` and `paper` profiles.

One epoch is what `train.epoch` does: n_sm_steps critic steps (their batches run through the
RNN together), then one model step with BPTT over 2000 steps. Both profiles are timed in the
same run, alternating, after one warm-up epoch each; the ratio paper/book is the number to
compare across machines.

    .venv/bin/python benchmarks/bench_wm_epoch.py --threads 1 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from mifd import train
from mifd.config import profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = {name: profile(name, "wm") for name in ("book", "paper")}
    states = {name: train.init_wm(config, 0) for name, config in configs.items()}
    for name, state in states.items():
        train.epoch(state, configs[name])
    seconds = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, state in states.items():
            started = time.perf_counter()
            train.epoch(state, configs[name])
            seconds[name].append(time.perf_counter() - started)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for name, values in seconds.items():
        epochs = configs[name].training.epochs
        median = statistics.median(values)
        print(f"  {name:6s} {median:7.2f} s/epoch  × {epochs} epochs ≈ {median * epochs / 3600:.2f} h")
    print(f"  paper / book: {statistics.median(seconds['paper']) / statistics.median(seconds['book']):.1f}")


if __name__ == "__main__":
    main()
