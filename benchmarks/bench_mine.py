"""Seconds per MINE critic step at the paper's two sizes, next to the matmul throughput.

A critic step is what one SM update asks of the estimator (SPEC §4.4): draw the permutation
(and noise), forward both terms, backward, clip, optimiser update.
  working memory   40 000 joint + 40 000 marginal pairs, x and y 20-D, width 512, ReLU
  separation       500 000 + 500 000 pairs, x and y 50-D, width 100, LeakyReLU 0.25

Candidates, all on the same statistics network, data and generator seed:
  autograd, two terms       T(x̃, ỹ) and T(x̃, y_π) as SPEC §4.2 writes them, autograd
  autograd, stacked         first layer shared, joint and marginal rows stacked into one
                            (2n, H) batch for the hidden layer, autograd
  mifd.mine                 the library: as "stacked", with the hand-written backward that
                            works in arrays reused from step to step
  bf16 autocast, two terms  "autograd, two terms" under torch.autocast(bfloat16); run only
                            where the bf16 matmul probe is faster than fp32 (CPUs with
                            AVX-512-BF16/AMX), since it is a large slowdown elsewhere

GFLOP/s are nominal: 3 × the forward multiply-adds of the two terms (2·n·2·(d_x·H + d_y·H +
H² + H) for the forward), the same count for every candidate, so they compare like with like.
The matmul probe is an fp32 (2n)×H @ H×H product into a preallocated output at each size; a
4000×512 @ 512×512 product in fp32 and in bf16 decides whether the bf16 candidate runs. Each
repeat times every candidate once, in turn, so that load from other processes falls on all
of them alike.

    .venv/bin/python benchmarks/bench_mine.py --threads 2 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from mifd.config import EstimatorConfig, profile
from mifd.mine import MineEstimator, ascend, critic_step, dv_bound, make_critic_optimizer

SIZES = {
    "working memory": (profile("paper", "wm").estimator, (20, 2000, 20)),
    "separation": (profile("paper", "separation").estimator, (50, 10_000, 50)),
}
Step = Callable[[MineEstimator, torch.optim.Optimizer, torch.Tensor, torch.Tensor,
                 torch.Generator], float]


def two_terms(estimator, optimizer, g1, g2, generator) -> float:
    optimizer.zero_grad(set_to_none=True)
    return ascend(estimator, optimizer,
                            estimator.reference(estimator.draw(g1, g2, generator)))


def stacked(estimator, optimizer, g1, g2, generator) -> float:
    optimizer.zero_grad(set_to_none=True)
    draw = estimator.draw(g1, g2, generator)
    x = draw.x if draw.noise_x is None else draw.x + draw.noise_x
    y = draw.y if draw.noise_y is None else draw.y + draw.noise_y
    t = estimator.statistics
    a_x, a_y = t.dense_x(x), t.dense_y(y)
    a_y_marginal = (t.dense_y(draw.y) if estimator.cfg.noise_asymmetric else a_y)[draw.perm]
    scores = t.head(torch.cat((a_x + a_y, a_x + a_y_marginal)))
    n = x.shape[0]
    return ascend(estimator, optimizer, dv_bound(scores[:n], scores[n:]))


def library(estimator, optimizer, g1, g2, generator) -> float:
    return critic_step(estimator, optimizer, g1, g2, generator)


def bf16_two_terms(estimator, optimizer, g1, g2, generator) -> float:
    optimizer.zero_grad(set_to_none=True)
    draw = estimator.draw(g1, g2, generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mi = estimator.reference(draw)
    return ascend(estimator, optimizer, mi.float())


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
    candidates: dict[str, Step] = {"autograd, two terms": two_terms, "autograd, stacked": stacked,
                                   "mifd.mine": library}
    if bf16 and bf16_probe > fp32_probe:
        candidates["bf16 autocast, two terms"] = bf16_two_terms
    elif bf16:
        print("bf16 critic step skipped: bf16 matmul is slower than fp32 on this CPU")
    print("| size | candidate | median s/step | best s/step | nominal GFLOP/s | "
          "matmul GFLOP/s | ratio to matmul | speed-up vs two terms |")
    print("|---|---|---|---|---|---|---|---|")
    for size, (cfg, shape) in SIZES.items():
        gflop = nominal_gflop(cfg, shape)
        n = shape[0] * shape[1]
        probe = matmul_gflops(2 * n, cfg.hidden, torch.float32)
        g1 = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        g2 = torch.rand(shape, generator=torch.Generator().manual_seed(2))
        states = {}
        for name in candidates:
            estimator = MineEstimator(shape[-1], shape[-1], cfg,
                                      generator=torch.Generator().manual_seed(0))
            states[name] = (estimator, make_critic_optimizer(estimator, cfg),
                            torch.Generator().manual_seed(3))
        times: dict[str, list[float]] = {name: [] for name in candidates}
        for repeat in range(repeats + 1):
            for name, step in candidates.items():
                seconds = _seconds(lambda: step(*states[name][:2], g1, g2, states[name][2]))
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
                        help="skip the bf16 probe's critic step even where bf16 is fast")
    args = parser.parse_args()
    for threads in args.threads:
        run(threads, args.repeats, args.bf16)


if __name__ == "__main__":
    main()
