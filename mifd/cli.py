"""Command line: `mifd book`, `mifd train`, `mifd sweep` and `mifd verify`.

Bad arguments print one line and exit with code 2, never a traceback, and never leave a
half-written result. A run that fails (diverges, or its worker dies) exits with code 1.
"""
from __future__ import annotations

import argparse
import ast
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import PROFILES, TASKS


def _literal(text: str) -> Any:
    """A papermill-style parameter value: a Python literal if it parses, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


JSON_WORDS = {"true": True, "false": False, "null": None}


def _setting_value(text: str) -> Any:
    """A `--set` value: true/false/null as JSON spells them (any case), else `_literal`."""
    return JSON_WORDS[text.lower()] if text.lower() in JSON_WORDS else _literal(text)


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _nonnegative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0, got 0")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _single_setting(text: str) -> tuple[str, Any]:
    """"estimator.precision=bfloat16" → ("estimator.precision", "bfloat16")."""
    name, values = _setting(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected section.field=VALUE (one value), got {text!r}")
    return name, values[0]


def _seeds(text: str) -> list[int]:
    """"7" → [7]; "1001-1010" → [1001, …, 1010] (inclusive)."""
    first, dash, last = text.partition("-")
    try:
        low, high = _nonnegative_int(first), _nonnegative_int(last) if dash else None
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a seed or a range like 1001-1010, got {text!r}") from None
    if high is None:
        return [low]
    if high < low:
        raise argparse.ArgumentTypeError(f"empty seed range {text!r}")
    return list(range(low, high + 1))


def _setting(text: str) -> tuple[str, list[Any]]:
    """"training.epochs=5,10" → ("training.epochs", [5, 10])."""
    name, equals, values = text.partition("=")
    if not equals or not name or not values:
        raise argparse.ArgumentTypeError(f"expected section.field=VALUE[,VALUE...], got {text!r}")
    return name, [_setting_value(v) for v in values.split(",")]


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (usage is one `--help` away) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mifd", description="MI-minimisation RNNs: train runs, build the book.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    book = commands.add_parser("book", help="execute the chapters and render the HTML book")
    book.add_argument("--chapter", action="append", metavar="NAME",
                      help="re-execute only this chapter (file stem, e.g. 01_tasks); repeatable")
    book.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                      default=[], help="papermill parameter for the named chapters")

    train = commands.add_parser("train", help="train (or resume) one run and store its record")
    train.add_argument("task", choices=TASKS, help="wm: the 2-bit working memory; "
                       "separation: the Lorenz/Rössler separation")
    train.add_argument("--profile", choices=PROFILES, default="book")
    train.add_argument("--seed", type=_nonnegative_int, required=True)
    train.add_argument("--lambda-mi", type=_float, default=None,
                       help="MI penalty weight λ (default: the profile's; 0 is the control)")
    train.add_argument("--epochs", type=_positive_int, default=None)
    train.add_argument("--set", type=_single_setting, action="append", default=[],
                       metavar="FIELD=VALUE", help="any setting, e.g. "
                       "estimator.precision=bfloat16 (repeatable)")
    train.add_argument("--results", type=Path, default=None,
                       help="results directory (default: the repository's results/)")
    train.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    sweep = commands.add_parser(
        "sweep", help="train every run of a grid that is not stored yet, in parallel")
    sweep.add_argument("task", choices=TASKS, help="wm or separation")
    sweep.add_argument("--profile", nargs="+", choices=PROFILES, default=["book"])
    sweep.add_argument("--seeds", nargs="+", type=_seeds, required=True,
                       help="seeds and ranges, e.g. 1001-1010 2000")
    sweep.add_argument("--lambda-mi", nargs="+", type=_float, default=[None],
                       help="MI penalty weights λ (default: the profile's)")
    sweep.add_argument("--set", type=_setting, action="append", default=[],
                       metavar="FIELD=V1,V2", help="grid over any setting, e.g. "
                       "training.epochs=100,200 (repeatable)")
    sweep.add_argument("--workers", type=_positive_int, default=None,
                       help="local worker processes (default: one per core, at most one per "
                       "cohort; each gets cores / workers torch threads, at most $OMP_NUM_THREADS)")
    sweep.add_argument("--cohort-size", type=_positive_int, default=None, metavar="N",
                       help="runs trained together in one process (default: as many as fit "
                       "in --memory-gb)")
    sweep.add_argument("--memory-gb", type=_positive_float, default=None, metavar="GB",
                       help="memory a cohort may use when --cohort-size is not given "
                       "(default: 12)")
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="submit to this dask.distributed scheduler instead of local workers")
    sweep.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    sweep.add_argument("--results", type=Path, default=None,
                       help="results directory (default: the repository's results/)")
    sweep.add_argument("--dry-run", action="store_true",
                       help="list the runs and whether each is stored; train nothing")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")

    verify = commands.add_parser(
        "verify", help="re-train the first epochs of a stored record's cohort (every run it "
        "trained with, in order) and compare (exit 1 if they differ)")
    verify.add_argument("path", type=Path, help="a record directory, e.g. "
                        "results/wm/<config hash>/seed-1001")
    verify.add_argument("--epochs", type=_positive_int, default=2,
                        help="epochs to re-train (default: 2)")
    verify.add_argument("--alone", action="store_true",
                        help="re-train the record by itself, not in its cohort")
    return parser


def _interrupt(signum, frame):
    """SIGTERM handled as Ctrl-C: the sweep stops its workers on the way out."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "book":
            return _book(args, parser)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "verify":
            return _verify(args)
        return _train(args)
    except ValueError as error:
        print(f"mifd: error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:  # runs.RunFailed: recorded in the run directory
        print(f"mifd: run failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mifd: interrupted; the run resumes from its last checkpoint", file=sys.stderr)
        return 130


def _book(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from . import book

    known = {nb.stem for nb in book.chapters()}
    for name in args.chapter or []:
        if name not in known:
            parser.error(f"unknown chapter {name!r}; choose from {', '.join(sorted(known))}")
    if args.parameter and not args.chapter:
        parser.error("-p needs --chapter: parameters belong to a named chapter")
    parameters = {name: _literal(value) for name, value in args.parameter}
    for notebook in book.chapters():
        if notebook.stem in (args.chapter or []):
            book.check_parameters(notebook, parameters)  # before anything is staged or run
    html = book.build(only=args.chapter, parameters=parameters)
    print(f"The book is at {html / 'index.html'}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .verify import report, verify

    if not (args.path / "manifest.json").exists():
        raise ValueError(f"{args.path} is not a complete record (no manifest.json)")
    result = verify(args.path, args.epochs, alone=args.alone)  # a RecordError is a ValueError: one line, exit 2
    print(report(result))
    return 0 if result["identical"] else 1


def _train(args: argparse.Namespace) -> int:
    from .config import profile
    from .runs import resolve_device, train_run
    from .sweep import LOOPS, final_summary

    resolve_device(args.device)
    config = profile(args.profile, args.task)
    changes: dict[str, Any] = {}
    if args.lambda_mi is not None:
        changes["training.lambda_mi"] = args.lambda_mi
    if args.epochs is not None:
        changes["training.epochs"] = args.epochs
    for name, value in args.set:
        if name in changes:
            raise ValueError(f"--set: {name} is given twice")
        changes[name] = value
    config = config.replace(**changes)
    from .mine import check_precision

    check_precision(config.estimator, args.device)
    loop = LOOPS[args.task]
    record = train_run(loop, config, args.seed, root=args.results, progress=not args.quiet,
                       device=args.device)
    assert record is not None  # None only when a stop_after paused it
    summary = final_summary(record)
    key, name = loop.score
    score = f"{name} {summary[key]:.3f}"
    print(f"stored {record.path}: final {score}, Î {summary['mi']:.3f} nats")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import store, sweep
    from .runs import resolve_device

    resolve_device(args.device)
    names = [name for name, _ in args.set]
    if len(set(names)) != len(names):
        raise ValueError(f"--set: a setting is given twice ({', '.join(names)})")
    seeds = list(dict.fromkeys(s for group in args.seeds for s in group))
    runs = sweep.grid(args.task, args.profile, seeds, args.lambda_mi, dict(args.set))
    if args.dry_run:
        plan = pd.DataFrame([
            {"run": run.label, "config hash": run.config.config_hash(),
             "stored": store.is_complete(store.run_dir(run.config, run.seed, args.results))}
            for run in runs])
        print(plan.to_string(index=False))
        return 0
    from .mine import check_precision

    for run in runs:
        check_precision(run.config.estimator, args.device)
    options = dict(root=args.results, device=args.device, progress=not args.quiet,
                   cohort_size=args.cohort_size,
                   memory_gb=args.memory_gb or sweep.DEFAULT_MEMORY_GB)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.scheduler is not None:
            with sweep.dask_executor(args.scheduler) as executor:
                summary = sweep.run_sweep(runs, executor, **options)
        else:  # the sweep's own processes stop with it, keeping their checkpoints
            summary = sweep.run_sweep(runs, workers=args.workers, **options)
    finally:
        signal.signal(signal.SIGTERM, previous)
    score = "accuracy" if args.task == "wm" else "r2"
    columns = ["profile", "lambda_mi", "seed", "status", score, "mi", "reason"]
    print(summary[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    counts = summary["status"].value_counts()
    print(", ".join(f"{counts.get(k, 0)} {k}" for k in ("stored", "trained", "failed")))
    return 1 if counts.get("failed", 0) else 0

