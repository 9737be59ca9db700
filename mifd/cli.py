"""Command line: `mifd book` and `mifd train`.

Bad arguments print one line and exit with code 2, never a traceback, and never leave a
half-written result.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any, Sequence

from .config import PROFILES


def _literal(text: str) -> Any:
    """A papermill-style parameter value: a Python literal if it parses, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


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
    train.add_argument("task", choices=["wm"], help="wm: the 2-bit working memory")
    train.add_argument("--profile", choices=PROFILES, default="book")
    train.add_argument("--seed", type=_nonnegative_int, required=True)
    train.add_argument("--lambda-mi", type=_float, default=None,
                       help="MI penalty weight λ (default: the profile's; 0 is the control)")
    train.add_argument("--epochs", type=_positive_int, default=None)
    train.add_argument("--results", type=Path, default=None,
                       help="results directory (default: the repository's results/)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "book":
            return _book(args, parser)
        return _train(args)
    except ValueError as error:
        print(f"mifd: error: {error}", file=sys.stderr)
        return 2
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
    html = book.build(only=args.chapter, parameters=parameters)
    print(f"The book is at {html / 'index.html'}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .config import profile
    from .train import train_wm

    config = profile(args.profile, args.task)
    changes: dict[str, Any] = {}
    if args.lambda_mi is not None:
        changes["training.lambda_mi"] = args.lambda_mi
    if args.epochs is not None:
        changes["training.epochs"] = args.epochs
    config = config.replace(**changes)
    record = train_wm(config, args.seed, root=args.results, progress=not args.quiet)
    history = record.history
    print(f"stored {record.path}: final accuracy {history['accuracy'][-1]:.3f}, "
          f"MSE {history['mse'][-1]:.4f}, Î {history['mi_before'][-1]:.3f} nats")
    return 0
