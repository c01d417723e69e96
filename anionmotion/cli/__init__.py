"""Command line: ``anionmotion SUBCOMMAND ...`` (argparse).

Each subcommand lives in its own module ``anionmotion.cli.<name>`` with
``register(subparsers)`` (adds the parser and sets ``func``) and
``run(args) -> int``.  Errors about input print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from .._version import __version__
from ..analysis.registry import cli_subcommands

__all__ = ["main", "parse_args", "build_parser"]

#: subcommand modules, in help order (generated from the analysis registry)
SUBCOMMANDS = cli_subcommands()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="anionmotion",
        description="Cation diffusion, polyanion rotation and paddle-wheel coupling from MD trajectories.")
    p.add_argument("--version", action="version", version=f"anionmotion {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            mod = importlib.import_module(f"anionmotion.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"anionmotion.cli.{name}":
                continue
            raise
        mod.register(sub)
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def _format_warning(message, category, filename, lineno, line=None):
    return f"anionmotion: warning: {message}\n"


def main(argv=None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input or options)."""
    from ..errors import AnionmotionError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    warnings.formatwarning = _format_warning
    try:
        return int(args.func(args) or 0)
    except (AnionmotionError, ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError,
            ImportError, EOFError, OSError) as err:
        print(f"anionmotion {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("anionmotion: interrupted", file=sys.stderr)
        return 130
