"""Seconds per MINE critic step at the paper's two sizes, next to the matmul throughput.

A critic step is what one SM update asks of the estimator (SPEC §4.4): draw the permutation
(and noise), forward both terms, backward, clip, optimiser update.
  working memory   40 000 joint + 40 000 marginal pairs, x and y 20-D, width 512, ReLU
  separation       500 000 + 500 000 pairs, x and y 50-D, width 100, LeakyReLU 0.25

Candidates, all on the same statistics network, data and generator seed (one run):
  autograd, two terms       T(x̃, ỹ) and T(x̃, y_π) as SPEC §4.2 writes them, autograd
  mifd.mine                 the library: first layer shared, with the hand-written backward
                            that works in arrays reused from step to step
  mifd.mine, bf16 critic    the same with `estimator.precision = "bfloat16"` (the hidden
                            layer's three products in bf16); only where the CPU does bf16
                            natively (AVX512_BF16 or AMX)

GFLOP/s are nominal: 3 × the forward multiply-adds of the two terms (2·n·2·(d_x·H + d_y·H +
H² + H) for the forward), the same count for every candidate, so they compare like with like.
The matmul probe is an fp32 (2n)×H @ H×H product into a preallocated output at each size. Each
repeat times every candidate once, in turn, so that load from other processes falls on all
of them alike.

    .venv/bin/python benchmarks/bench_mine.py --threads 2 --repeats 3
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable

import torch

from mifd.config import EstimatorConfig, profile
from mifd.mine import (
    MineEstimator,
    ascend,
    bf16_native,
    critic_step,
    make_critic_optimizer,
)

SIZES = {
    "working memory": (profile("paper", "wm").estimator, (20, 2000, 20)),
    "separation": (profile("paper", "separation").estimator, (50, 10_000, 50)),
}
Step = Callable[[MineEstimator, torch.optim.Optimizer, torch.Tensor, torch.Tensor,
                 torch.Generator], float]


def two_terms(estimator, optimizer, g1, g2, generator) -> float:
    optimizer.zero_grad(set_to_none=True)
    return ascend(estimator, optimizer, estimator.reference(estimator.draw(g1, g2, generator)))


def library(estimator, optimizer, g1, g2, generator) -> float:
    return critic_step(estimator, optimizer, g1, g2, generator)


def nominal_gflop(cfg: EstimatorConfig, shape: tuple[int, int, int]) -> float:
    """3 × forward multiply-adds ×2 of the two terms, in GFLOP."""
    batch, steps, dim = shape
    n, h = batch * steps, cfg.hidden
    return 3 * 2 * n * 2 * (dim * h + dim * h + h * h + h) / 1e9


def matmul_gflops(rows: int, width: int, dtype: torch.dtype, repeats: int = 3) -> float:
    """Best GFLOP/s of a (rows, width) @ (width, width) product into a preallocated output."""
    a = torch.randn(rows, width).to(dtype)
    b = torch.randn(width, width).to(dtype)
    out = torch.empty(rows, width, dtype=dtype)
    torch.mm(a, b, out=out)
    best = min(_seconds(lambda: torch.mm(a, b, out=out)) for _ in range(repeats))
    return 2 * rows * width * width / best / 1e9


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(threads: int, repeats: int, bf16: bool) -> None:
    torch.set_num_threads(threads)
    print(f"\n## {threads} thread(s), {repeats} repeats, torch {torch.__version__}")
    bf16_rows = 4000
    fp32_probe = matmul_gflops(bf16_rows, 512, torch.float32)
    bf16_probe = matmul_gflops(bf16_rows, 512, torch.bfloat16, repeats=1)
    print(f"matmul probe {bf16_rows}×512 @ 512×512: fp32 {fp32_probe:.1f} GFLOP/s, "
          f"bf16 {bf16_probe:.1f} GFLOP/s")
    candidates: dict[str, tuple[Step, str]] = {
        "autograd, two terms": (two_terms, "float32"), "mifd.mine": (library, "float32")}
    if bf16 and bf16_native("cpu"):
        candidates["mifd.mine, bf16 critic"] = (library, "bfloat16")
    elif bf16:
        print("bf16 critic step skipped: this CPU has no native bf16 products")
    print("| size | candidate | median s/step | best s/step | nominal GFLOP/s | "
          "matmul GFLOP/s | ratio to matmul | speed-up vs two terms |")
    print("|---|---|---|---|---|---|---|---|")
    for size, (cfg, shape) in SIZES.items():
        gflop = nominal_gflop(cfg, shape)
        n = shape[0] * shape[1]
        probe = matmul_gflops(2 * n, cfg.hidden, torch.float32)
        g1 = torch.rand((1, *shape), generator=torch.Generator().manual_seed(1))  # one run
        g2 = torch.rand((1, *shape), generator=torch.Generator().manual_seed(2))
        states = {}
        for name, (_, precision) in candidates.items():
            run_cfg = dataclasses.replace(cfg, precision=precision)
            estimator = MineEstimator(shape[-1], shape[-1], run_cfg,
                                      generators=torch.Generator().manual_seed(0))
            states[name] = (estimator, make_critic_optimizer(estimator, run_cfg),
                            torch.Generator().manual_seed(3))
        times: dict[str, list[float]] = {name: [] for name in candidates}
        for repeat in range(repeats + 1):
            for name, (step, _) in candidates.items():
                state = states[name]
                seconds = _seconds(lambda step=step, state=state, g1=g1, g2=g2:
                                   step(*state[:2], g1, g2, state[2]))
                if repeat:  # the first round warms up (allocations, thread pools)
                    times[name].append(seconds)
        base = statistics.median(times["autograd, two terms"])
        for name, samples in times.items():
            median = statistics.median(samples)
            print(f"| {size} | {name} | {median:.3f} | {min(samples):.3f} | "
                  f"{gflop / median:.0f} | {probe:.0f} | {gflop / median / probe:.2f} | "
                  f"{base / median:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-bf16", dest="bf16", action="store_false",
                        help="skip the bf16 critic step even where bf16 is native")
    args = parser.parse_args()
    for threads in args.threads:
        run(threads, args.repeats, args.bf16)


if __name__ == "__main__":
    main()
