"""Command-line options every benchmark command shares: the mode, the repeats, the volume cache."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from benchmarks.volumes import DEFAULT_DATA_DIR, FULL, QUICK, Sizes, VolumeStore


@dataclass(frozen=True)
class Mode:
    """What a command runs on: full or quick sizes, repeats, and where the volumes live."""

    quick: bool
    sizes: Sizes
    repeats: int
    store: VolumeStore


def mode_parser(
    description: str, *, full_repeats: int, quick_repeats: int = 1, unit: str = "timed runs"
) -> argparse.ArgumentParser:
    """A parser with ``--quick``, ``--repeats`` and ``--data-dir``; read it with :func:`mode_of`.

    Parameters
    ----------
    description : str
        The command's one-line description.
    full_repeats, quick_repeats : int
        Default ``--repeats`` in full and in quick mode.
    unit : str
        What one repeat is, for the help text.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny volumes (CI smoke)")
    parser.add_argument(
        "--repeats",
        type=int,
        help=f"{unit} (default {full_repeats}, with --quick {quick_repeats})",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="volume cache folder"
    )
    parser.set_defaults(full_repeats=full_repeats, quick_repeats=quick_repeats)
    return parser


def mode_of(args: argparse.Namespace) -> Mode:
    """The :class:`Mode` that parsed arguments of a :func:`mode_parser` parser ask for."""
    default = args.quick_repeats if args.quick else args.full_repeats
    return Mode(
        quick=args.quick,
        sizes=QUICK if args.quick else FULL,
        repeats=args.repeats or default,
        store=VolumeStore(args.data_dir),
    )
