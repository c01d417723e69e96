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


#: the exception behind the last exit status 2 of :func:`main` (tests check that it is an AnionmotionError or
#: an OSError naming a file, not a raw numpy/scipy error)
last_error = None

#: argparse destinations that name input files of a subcommand (never written over, even with --overwrite)
INPUT_OPTIONS = ("traj", "topology", "vel", "cell_file", "results", "manifest", "system_xml", "structure")


def input_paths(args):
    """The input files named on the command line (the trajectory, companion files, result files)."""
    out = []
    for name in INPUT_OPTIONS:
        v = getattr(args, name, None)
        if isinstance(v, (list, tuple)):
            out.extend(str(x) for x in v if x)
        elif v:
            out.append(str(v))
    return out


def _one_line(err) -> str:
    """The message of ``err`` on one line (multi-line library messages are joined with ' | ')."""
    text = str(err).strip() or type(err).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines)


def main(argv=None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input or options, 1 an internal error)."""
    from ..errors import AnionmotionError
    from ..results import protected_inputs

    global last_error
    last_error = None
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    warnings.formatwarning = _format_warning
    try:
        with protected_inputs(input_paths(args), strict_folders=True):
            return int(args.func(args) or 0)
    except MemoryError:
        print(f"anionmotion {args.command}: error: out of memory; give a smaller --memory budget, fewer frames "
              "or atoms, or run on a machine with more RAM", file=sys.stderr)
        return 2
    except (AnionmotionError, ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError,
            ImportError, EOFError, OSError) as err:
        last_error = err
        print(f"anionmotion {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("anionmotion: interrupted", file=sys.stderr)
        return 130
