"""Command line: `mifd book` (more subcommands join as the chapters need them).

Bad arguments print one line and exit with code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import ast
import sys
from typing import Any, Sequence


def _literal(text: str) -> Any:
    """A papermill-style parameter value: a Python literal if it parses, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mifd", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    book = commands.add_parser("book", help="execute the chapters and render the HTML book")
    book.add_argument("--chapter", action="append", metavar="NAME",
                      help="re-execute only this chapter (file stem, e.g. 01_tasks); repeatable")
    book.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                      default=[], help="papermill parameter for the named chapters")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "book":
            return _book(args, parser)
    except ValueError as error:
        print(f"mifd: error: {error}", file=sys.stderr)
        return 2
    return 0


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
