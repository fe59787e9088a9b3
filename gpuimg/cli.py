"""The ``gpuimg`` command line: ``info``, ``bench`` and ``convert`` (also ``convert --bgzf``).

Exit codes: 0 success, 1 a file is missing or cannot be read or written as an image (one line on
stderr, no traceback), 2 a usage error (argparse's message).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gpuimg import bench
from gpuimg.config import configure
from gpuimg.errors import GpuimgError
from gpuimg.io.recompress import Rewrite, gzip_images_under, rewrite_as_bgzf
from gpuimg.loadsave import load, save
from gpuimg.terminal import human_size, optional_module, progress

__all__ = ["main"]

EXIT_OK, EXIT_FILE, EXIT_USAGE = 0, 1, 2

_FILE_ERRORS = (OSError, GpuimgError, ValueError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 ok, 1 bad or missing file, 2 usage error.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        args.check_usage(args)
    except SystemExit as exit_:  # --help (0) and usage errors (2)
        return int(exit_.code or 0)
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader went away (``gpuimg info ... | head``): stop quietly, as Python's docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FILE
    except _FILE_ERRORS as exc:
        print(f"gpuimg {args.command}: error: {_message(exc)}", file=sys.stderr)
        return EXIT_FILE


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def _dtype(text: str) -> np.dtype:
    try:
        return np.dtype(text)
    except TypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a numpy dtype (e.g. float32)") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _gzip_level(text: str) -> int:
    if text not in {str(level) for level in range(10)}:
        raise argparse.ArgumentTypeError(f"{text!r} is not a gzip level 0-9")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpuimg",
        description="Inspect, benchmark and convert NIfTI-1, NIfTI-2 and Analyze images.",
        epilog="Exit codes: 0 ok, 1 missing or bad file, 2 usage error.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.set_defaults(check_usage=lambda args: None)

    info = commands.add_parser(
        "info",
        help="one line per file: format, shape, dtype, zooms, units, scaling, affine, size",
        description="Print one line per file (like nib-ls); -v adds every header field.",
    )
    info.add_argument("files", nargs="+", metavar="FILE")
    info.add_argument("-v", "--verbose", action="store_true", help="print the full header")
    info.set_defaults(run=_info)

    bench_parser = commands.add_parser(
        "bench",
        help="time loading files with gpuimg (and nibabel, when installed)",
        description="Load each file with gpuimg and, when installed, nibabel in the same run; "
        "report seconds (best of --repeat), MB/s of output, the speed-up and, on a GPU, the "
        "bytes moved host to device.",
    )
    bench_parser.add_argument("files", nargs="*", metavar="FILE")
    bench_parser.add_argument(
        "--sample",
        action="store_true",
        help="add realistic sample volumes (256^3 T1 and a 4D series, .nii and .nii.gz; "
        "generated once into the user cache folder)",
    )
    bench_parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="default: cpu, and cuda too when a GPU is usable",
    )
    bench_parser.add_argument(
        "--dtype", type=_dtype, default=np.dtype(np.float32), help="default: float32"
    )
    bench_parser.add_argument(
        "--repeat", type=_positive, default=3, help="loads per file and library (default 3)"
    )
    bench_parser.add_argument("--json", action="store_true", help="print the results as JSON")
    bench_parser.set_defaults(run=_bench)

    convert = commands.add_parser(
        "convert",
        help="rewrite an image in another format or container, or gzip images as BGZF",
        usage="gpuimg convert [-h] [--dtype DTYPE] IN OUT\n"
        "       gpuimg convert --bgzf [--level N] PATH [PATH ...]",
        description="Load IN and save it as OUT; the extension of OUT picks the format "
        "(.nii, .nii.gz, .hdr/.img pair). With --bgzf, rewrite each gzip file PATH, and every "
        ".nii.gz/.img.gz/.hdr.gz under each directory PATH (recursively), as BGZF in place. "
        "Every write is atomic.",
    )
    convert.add_argument("paths", nargs="+", metavar="PATH")
    convert.add_argument("--dtype", type=_dtype, default=None, help="on-disk dtype of OUT")
    convert.add_argument(
        "--bgzf",
        action="store_true",
        help="rewrite gzip files in place as BGZF (blocks decoded in parallel and sliced "
        "block by block; still read by every gzip reader)",
    )
    convert.add_argument(
        "--level",
        type=_gzip_level,
        default=None,
        help="gzip level 0-9 of what is written (default: gpuimg.config.settings.compresslevel)",
    )
    convert.set_defaults(
        run=_convert, check_usage=functools.partial(_check_convert_usage, convert.error)
    )
    return parser


# -- info ---------------------------------------------------------------------------------------------
def _info(args: argparse.Namespace) -> int:
    rows, failed = [], False
    for path in args.files:
        try:
            img = load(path)
            rows.append((_info_row(path, img), img))
        except _FILE_ERRORS as exc:
            print(f"gpuimg info: error: {_message(exc)}", file=sys.stderr)
            failed = True
    widths = [max(len(row[i]) for row, _ in rows) for i in range(len(rows[0][0]))] if rows else []
    for row, img in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        if args.verbose:
            _print_header(img)
    return EXIT_FILE if failed else EXIT_OK


def _info_row(path: str, img: Any) -> list[str]:
    header = img.header
    proxy = img.dataobj
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    units = header.get_xyzt_units() if hasattr(header, "get_xyzt_units") else ("unknown", "unknown")
    affine = " ".join("[" + " ".join(f"{v:.4g}" for v in row) + "]" for row in img.affine[:3])
    return [
        path,
        type(img).__name__,
        str(img.get_data_dtype()),
        "[" + ", ".join(str(n) for n in img.shape) + "]",
        "x".join(f"{z:.2f}" for z in header.get_zooms()),
        "/".join(units),
        "unscaled" if (slope, inter) == (1.0, 0.0) else f"*{slope:.6g}{inter:+.6g}",
        f"affine [{affine}]",
        _size(path, img),
    ]


def _size(path: str, img: Any) -> str:
    """Bytes on disk of every file of the image (header and data of a pair)."""
    names = {holder.filename for holder in img.file_map.values() if holder.filename}
    return human_size(sum(os.path.getsize(name) for name in names or {path}))


def _field_text(value: np.ndarray) -> str:
    if value.dtype.kind == "S":
        return repr(value.item().decode("latin-1")) if value.ndim == 0 else str(value.tolist())
    return str(value.item()) if value.ndim == 0 else np.array2string(value, separator=", ")


def _print_header(img: Any) -> None:
    for key, value in img.header.items():
        print(f"    {key:<16}: {_field_text(np.asarray(value))}")
    extensions = getattr(img.header, "extensions", ())
    print(f"    {'extensions':<16}: {len(extensions)}")


# -- bench ----------------------------------------------------------------------------------------
def _bench(args: argparse.Namespace) -> int:
    files = list(args.files) + (bench.sample_files() if args.sample else [])
    if not files:
        print("gpuimg bench: error: give FILE arguments or --sample", file=sys.stderr)
        return EXIT_USAGE
    devices = [args.device] if args.device else bench.default_devices()
    libraries: dict[str, Callable[[str, np.dtype, str], tuple[Any, int]]] = {
        "gpuimg": bench.gpuimg_load
    }
    nib = optional_module("nibabel")
    if nib is not None:
        libraries["nibabel"] = bench.nibabel_loader(nib)
    steps = len(files) * len(devices) * len(libraries) * args.repeat
    with progress(steps) as advance:
        report = bench.run(
            files, libraries, devices=devices, dtype=args.dtype, repeat=args.repeat, advance=advance
        )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        bench.print_table(report)
    if nib is None:
        print(
            f"gpuimg bench: nibabel is not installed, so there is no comparison: {bench.NIBABEL_HINT}",
            file=sys.stderr,
        )
    return EXIT_OK


# -- convert --------------------------------------------------------------------------------------
def _check_convert_usage(error: Callable[[str], None], args: argparse.Namespace) -> None:
    if args.bgzf and args.dtype is not None:
        error("--dtype converts IN to OUT; --bgzf rewrites files in place")
    if not args.bgzf and len(args.paths) != 2:
        error(f"expected IN and OUT, found {len(args.paths)} path(s)")


def _convert(args: argparse.Namespace) -> int:
    if args.bgzf:
        return _convert_bgzf(args.paths, args.level)
    img = load(args.paths[0])
    if args.dtype is not None:
        img.set_data_dtype(args.dtype)
    with configure(**({} if args.level is None else {"compresslevel": args.level})):
        save(img, args.paths[1])
    return EXIT_OK


def _convert_bgzf(paths: Sequence[str], level: int | None) -> int:
    """Rewrite gzip files (and those under directories) as BGZF in place; print a summary."""
    files = gzip_images_under(paths)
    start = time.perf_counter()
    done: list[Rewrite] = []
    failed = 0
    with progress(len(files), unit="file", minimum=2) as advance:
        for path in files:
            try:
                done.append(rewrite_as_bgzf(path, compresslevel=level))
            except _FILE_ERRORS as exc:
                print(f"gpuimg convert: error: {_message(exc)}", file=sys.stderr)
                failed += 1
            advance()
    rewritten = [r for r in done if r.rewritten]
    before = sum(r.bytes_before for r in rewritten)
    after = sum(r.bytes_after for r in rewritten)
    print(
        f"{len(rewritten)} file(s) rewritten as BGZF, {len(done) - len(rewritten)} already BGZF, "
        f"{failed} failed; {human_size(before)} -> {human_size(after)} "
        f"in {time.perf_counter() - start:.2f} s"
    )
    return EXIT_FILE if failed else EXIT_OK
