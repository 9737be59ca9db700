"""Seconds per model update of the separation training, at the `paper` and `book` profiles.

One model (MM) update of SPEC §5.2 is: the critic phase (n_sm_steps random batches of B
sequences run through the GRU without gradient, a critic step on each, one more Î), then
one MM step (GRU forward and backward over the batch with the MI term). Timed here:
  SM forward, separate  the n_sm_steps batches of B sequences through the GRU one by one,
                        as mifd.separation does
  SM forward, batched   the same n_sm_steps·B sequences as one batch (the alternative it
                        was measured against: same states to float rounding, n_sm_steps
                        times the memory)
  critic steps          n_sm_steps critic steps on the batches' hidden states (three
                        timed, then scaled)
  MM step               one model step, with λ > 0 so the MI term is differentiated
The data are random arrays of the profile's shapes (the cost does not depend on their
values), so no chaotic trajectories are generated. At `paper` settings one SM forward is
costly, so the SM forwards are timed on `--paper-fraction` of the sequences and scaled.
The run time extrapolates: epochs × n_mm_steps × (critic phase + MM step), plus the test
evaluations and the critic's pre-training.

First, the GRU alone: `mifd.gru`'s fused loop (`GRUNet`) against torch.nn.GRU with the
same weights (the reference, timed in the same run), best of three: one forward of 50
sequences × 10 000 steps without gradient (the paper's critic-phase forward; the fused
loop reusing its arrays as the training does, and with fresh ones), and one forward +
backward of 50 × 1000 (the `book` model step's GRU). Then cohorts of 1, 5 and 10 runs at
`book` against the single run (a cohort of one), timed in the same run.

    .venv/bin/python benchmarks/bench_separation.py --threads 1
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from mifd import separation
from mifd.config import profile
from mifd.models import GRUNet
from mifd.tasks import SeparationBatch


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _random_data(config, n_pool: int) -> dict[str, SeparationBatch]:
    rng = np.random.default_rng(0)
    t = config.task.seq_len

    def batch(n):
        targets = rng.uniform(size=(n, t, 6)).astype(np.float32)
        return SeparationBatch(targets[..., :3] + targets[..., 3:], targets)

    return {"pool": batch(n_pool), "test": batch(config.task.n_test)}


def _best(fn, repeats: int = 3) -> float:
    return min(_seconds(fn) for _ in range(repeats))


def gru_versus_torch() -> dict[str, tuple[float, float]]:
    """{piece: (torch.nn.GRU seconds, fused seconds)} for the pieces in the docstring."""
    config = profile("paper", "separation")
    model = GRUNet(config.model, generators=torch.Generator().manual_seed(0))
    reference = nn.GRU(3, config.model.n_units, batch_first=True)
    readout = nn.Linear(config.model.n_units, 6)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(reference, f"{name}_l0").copy_(getattr(model, name)[0])
    generator = torch.Generator().manual_seed(1)
    long = torch.randn(1, 50, 10_000, 3, generator=generator)
    short = torch.randn(1, 50, 1000, 3, generator=generator)

    def torch_step():
        readout(reference(short[0])[0]).square().sum().backward()

    def fused_step():
        model(short)[1].square().sum().backward()

    with torch.no_grad():
        forward = (_best(lambda: reference(long[0])),
                   _best(lambda: model.hidden(long, reuse_buffers=True)))
        fresh = (forward[0], _best(lambda: model.hidden(long)))
    return {"forward 50 × 10 000, no grad (arrays reused)": forward,
            "forward 50 × 10 000, no grad (fresh arrays)": fresh,
            "forward + backward 50 × 1000": (_best(torch_step), _best(fused_step))}


def measure(name: str, fraction: float) -> dict[str, float]:
    config = profile(name, "separation")
    t, b = config.training, config.task.batch_size
    state = separation.init_separation(config, 0, data=_random_data(config, 2 * b))
    n_seq = max(1, round(fraction * t.n_sm_steps)) * b
    inputs, _ = separation._batch(state, config, n_seq)
    scale = t.n_sm_steps * b / n_seq
    with torch.no_grad():
        batched = _seconds(lambda: state.model.hidden(inputs)) * scale
        separate = _seconds(lambda: [state.model.hidden(x, reuse_buffers=True)
                                     for x in inputs.split(b, dim=1)]) * scale
        h = state.model.hidden(inputs[:, :b])
    timed_steps = min(t.n_sm_steps, 3)
    critic = _seconds(lambda: [separation._critic_step(
        state.estimator, state.critic_opt, *separation.noisy_groups(state, config, h),
        state.generators, config.estimator) for _ in range(timed_steps)]) * t.n_sm_steps / timed_steps
    mm = _seconds(lambda: separation.model_step(state, config))
    test = _seconds(lambda: separation.test_evaluation(state.model, state.data["test"],
                                                       config.task.washout))
    update = separate + critic + mm
    run = (t.epochs * (t.n_mm_steps * update + test)
           + t.n_sm_pretrain * (separate + critic) / max(t.n_sm_steps, 1))
    return {"SM forward, batched": batched, "SM forward, separate": separate,
            "critic steps": critic, "MM step": mm, "test evaluation": test,
            "model update": update, "run (h)": run / 3600}


def cohort_update(name: str, runs: int) -> float:
    """Seconds per run of one model update (critic phase + MM step) for a cohort of `runs`
    runs at profile `name` (half of them controls), on random data of the profile's shapes."""
    config = profile(name, "separation")
    configs = [config.replace(**{"training.lambda_mi": config.training.lambda_mi if r % 2 == 0
                                 else 0.0}) for r in range(runs)]
    state = separation.init_separation(configs, list(range(runs)),
                                       data=_random_data(config, 2 * config.task.batch_size))

    def update():
        separation.critic_phase(state, config, config.training.n_sm_steps)
        separation.model_step(state, config)

    update()  # the first call allocates the reused arrays
    return _seconds(update) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--paper-fraction", type=float, default=0.25,
                        help="share of the paper's SM sequences actually run (then scaled)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print("\nGRU alone: torch.nn.GRU (reference) against the fused loop")
    for piece, (reference, fused) in gru_versus_torch().items():
        print(f"  {piece:46s} nn.GRU {reference:7.3f} s  fused {fused:7.3f} s  "
              f"speed-up {reference / fused:5.2f}×")
    print("\ncohorts at book: seconds per run of one model update (critic phase + MM step)")
    single = cohort_update("book", 1)
    for runs in (1, 5, 10):
        seconds = single if runs == 1 else cohort_update("book", runs)
        print(f"  {runs:2d} run(s)   {seconds:7.3f} s per run   {single / seconds:5.2f}× the single run")
    for name, fraction in (("book", 1.0), ("paper", args.paper_fraction)):
        cfg = profile(name, "separation")
        tr = cfg.training
        print(f"\n{name}: T = {cfg.task.seq_len}, B = {cfg.task.batch_size}, "
              f"{tr.n_sm_steps} SM steps per update, {tr.n_mm_steps} updates × {tr.epochs} "
              f"epochs, critic rows {cfg.estimator.sample_fraction:g} of "
              f"{cfg.task.batch_size * cfg.task.seq_len}")
        result = measure(name, fraction)
        for key, value in result.items():
            unit = "h" if key.endswith("(h)") else "s"
            print(f"  {key:24s} {value:10.3f} {unit}")
        print(f"  batched / separate SM forward: "
              f"{result['SM forward, batched'] / result['SM forward, separate']:.2f}")


if __name__ == "__main__":
    main()
