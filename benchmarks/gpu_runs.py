"""Train the book's 1000-epoch working-memory runs on a lent GPU as one cohort and pack
their records for the trip back.

The runs come in groups, in order of priority (`GROUPS`): the evidence of chapter 4
(λ = 0.1 and λ = 0, seeds 1001–1010), chapter 6's λ study (λ = 0.03, 0.3 and 1, seeds
1001–1005), then chapter 6's L1 study (every candidate c_L1 with λ = 0.1 and 0, seeds
1001–1003, then 1004–1005). All of them are `book` settings with `training.epochs=1000`
and a float32 critic, so they differ only in per-run settings and train as one cohort:
one sequential RNN loop for all of them, which is what a GPU needs (a run alone leaves it
idle between kernel launches).

Measured on the lent H200 (2026-12-04, torch 2.11 + CUDA 13.0; benchmarks/README.md): an
epoch costs ≈0.51 s + 7 ms per run, so even the first group (20 runs, ≈0.70 s an epoch
with its checkpoints) needs ≈12 minutes for 1000 epochs — more than one call of the device
tool (10 minutes) and most of a session's 15. So it trains in the background across two
calls, the second started at once (a warm machine waits 30 s):

    # call 1 (timeout 600): start it detached, watch it for 575 s
    export MIFD_GIT_COMMIT=<full commit> PYTHONUNBUFFERED=1; mkdir -p /tmp/gout
    setsid nohup python3 benchmarks/gpu_runs.py --groups 1 --results /tmp/gres/results \
        --out /tmp/gout > /tmp/train.log 2>&1 < /dev/null & echo $! > /tmp/train.pid
    end=$((SECONDS+575)); while kill -0 $(cat /tmp/train.pid) && [ $SECONDS -lt $end ]; do sleep 5; done
    cat /tmp/train.log
    # call 2 (timeout 240): wait for that process (by its pid: a `pgrep -f` on the script's
    # name matches the waiting shell itself and never ends), then hand the pieces back
    while kill -0 $(cat /tmp/train.pid); do sleep 2; done; cp /tmp/gout/* $OUT/; cat /tmp/train.log

Without `--groups` it first times an epoch of the whole list and of the first group (one
warm-up, then the best of two; fitted as a + b·runs) and keeps the longest prefix of groups
whose pre-training and epochs fit before `--deadline` seconds. While training it prints
progress every 100 epochs and exits with status 3 once its projected end passes the
deadline (`--deadline 0` for none). The new records are packed as `records.tgz.*` pieces
of at most 15 MB under `--out` (unpack in the repository with `cat records.tgz.* | tar xz`).
`--tests` runs the training tests that take a device beside it. The GPU's random streams
differ from the CPU's (see `runs.build_networks`): the records say `"device": "cuda:0"` and
name the GPU. The machine's copy of the tree carries a stale git repository, so
MIFD_GIT_COMMIT must name the commit (`store.git_commit`).
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
sys.path.insert(0, str(ROOT))

from mifd import evidence, store, train  # noqa: E402
from mifd.config import profile  # noqa: E402

L1_CANDIDATES = (1e-5, 1e-4, 1e-3)  # chapter 6's pilot strengths
GROUPS = (
    ("evidence", (0.1, 0.0), (0.0,), range(1001, 1011)),
    ("λ study", (0.03, 0.3, 1.0), (0.0,), range(1001, 1006)),
    ("L1 study, seeds 1001–1003", (0.1, 0.0), L1_CANDIDATES, range(1001, 1004)),
    ("L1 study, seeds 1004–1005", (0.1, 0.0), L1_CANDIDATES, range(1004, 1006)),
)


def group_runs(base, lambdas, c_l1s, seeds) -> list[tuple]:
    configs = evidence.study_configs(base, lambdas, c_l1s).values()
    return [(config, seed) for config in configs for seed in seeds]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def epoch_seconds(runs: list[tuple], device: str, repeats: int = 2) -> float:
    """Best of `repeats` epochs of a fresh cohort of `runs`, after one warm-up."""
    state = train.init_wm([c for c, _ in runs], [s for _, s in runs], device=device)
    train.epoch(state)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        train.epoch(state)
        sync(device)
        best = min(best, time.perf_counter() - started)
    del state
    if device == "cuda":
        torch.cuda.empty_cache()
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=0.0,
                        help="seconds from the start by which training must end (0: none)")
    parser.add_argument("--margin", type=float, default=1.1, help="factor on projected times")
    parser.add_argument("--out", type=Path, required=True, help="folder for the packed records")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--profile", default="book", help="profile of the runs (smoke to try it)")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tests", action="store_true", help="run the device tests beside it")
    parser.add_argument("--groups", type=int, default=0,
                        help="train the first N groups without timing them first")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_runs: torch sees no CUDA GPU here", file=sys.stderr)
        return 2
    if args.device == "cuda":
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
              f"{torch.get_num_threads()} CPU threads; commit {store.git_commit()}", flush=True)
    tests = None
    if args.tests:
        tests = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:nbval", "-o", "addopts=",
             "tests/test_train.py", "-k", "device"], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "MIFD_TEST_DEVICE": args.device})
    base = profile(args.profile, "wm").replace(**{"training.epochs": args.epochs,
                                                  "estimator.precision": "float32"})
    groups = [(name, group_runs(base, *spec)) for name, *spec in GROUPS]
    everything = [run for _, runs in groups for run in runs]
    first = groups[0][1]
    if args.groups:
        return train_and_pack(args, started, groups[:args.groups])
    t_all = epoch_seconds(everything, args.device)
    t_first = epoch_seconds(first, args.device)
    slope = max((t_all - t_first) / max(len(everything) - len(first), 1), 0.0)
    intercept = max(t_first - slope * len(first), 0.0)
    print(f"| runs | s/epoch | s/run-epoch |\n|---|---|---|\n"
          f"| {len(first)} | {t_first:.3f} | {t_first / len(first):.4f} |\n"
          f"| {len(everything)} | {t_all:.3f} | {t_all / len(everything):.4f} |\n"
          f"fit: {intercept:.3f} s + {slope * 1000:.2f} ms per run", flush=True)
    pretrain_epochs = base.training.n_sm_pretrain / max(base.training.n_sm_steps, 1)
    chosen: list[tuple] = []
    names = []
    for name, runs in groups:
        size = len(chosen) + len(runs)
        projected = (intercept + slope * size) * (args.epochs + pretrain_epochs) * args.margin
        if args.deadline and time.perf_counter() - started + projected > args.deadline:
            break
        chosen += runs
        names.append(name)
    if not chosen:
        print(f"no group fits: {len(first)} runs need ≈{t_first * args.epochs:.0f} s", flush=True)
        return 3
    return train_and_pack(args, started, [(n, r) for n, r in groups if n in names], tests)


def train_and_pack(args, started: float, groups: list, tests=None) -> int:
    chosen = [run for _, runs in groups for run in runs]
    names = [name for name, _ in groups]
    todo = [(c, s) for c, s in chosen if not store.is_complete(store.run_dir(c, s, args.results))]
    print(f"training {len(todo)} runs ({'; '.join(names)}) for {args.epochs} epochs", flush=True)
    began = time.perf_counter()

    def report(state) -> None:
        done = state.epoch
        spent = time.perf_counter() - began
        end = time.perf_counter() - started + spent / max(done, 1) * (args.epochs - done)
        if done % 100 == 0 or done == args.epochs:
            print(f"epoch {done}: {spent:.0f} s, projected end at {end:.0f} s", flush=True)
        if args.deadline and done >= 50 and end > args.deadline + 15:
            print(f"epoch {done}: projected end {end:.0f} s passes the deadline; stopping", flush=True)
            raise SystemExit(3)

    outcomes = train.train_wm_cohort([c for c, _ in todo], [s for _, s in todo],
                                     root=args.results, progress=False, on_epoch=report,
                                     device=args.device)
    failed = [o for o in outcomes if isinstance(o, str)]
    stored = [store.run_dir(c, s, args.results) for c, s in todo]
    stored = [d for d in stored if store.is_complete(d)]
    print(f"stored {len(stored)} records, {len(failed)} failed: {failed}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [str(d.relative_to(args.results.parent)) for d in stored]
    pack = subprocess.run(f"tar cz {' '.join(paths)} | split -b 15M - {args.out}/records.tgz.",
                          shell=True, cwd=args.results.parent)
    if tests is not None:
        output, _ = tests.communicate()
        print("device tests:\n" + "\n".join(output.strip().splitlines()[-3:]), flush=True)
    print(f"done at {time.perf_counter() - started:.0f} s", flush=True)
    return pack.returncode or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
