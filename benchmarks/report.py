"""Tables (plain text and Markdown) and the speed-up plot, from a benchmark result.

Run as ``python3 -m benchmarks.report RESULT.json [--markdown] [--plot PNG]`` to render a saved
result again.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LIBS = ("nibabel", "gpuimg")


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 1:
        return f"{ms:.1f}"
    return f"{ms:.3f}"


def _spread(stats: dict[str, Any]) -> str:
    return f"{_ms(stats['median'])} [{_ms(stats['min'])}–{_ms(stats['max'])}]"


def _memory_cell(memory: dict[str, Any] | None) -> str:
    if memory is None:
        return ""
    rss = memory["rss_ratio"]
    return f"{memory['tracemalloc_ratio']:.2f} / {'n/a' if rss is None else f'{rss:.2f}'}"


def _target_cell(row: dict[str, Any]) -> str:
    if row["target"] is None:
        return ""
    return f"≥{row['target']:g}× {'met' if row['target_met'] else 'NOT met'}"


def _rate_cell(row: dict[str, Any]) -> str:
    if row["items"] == 1:
        return ""
    rates = [row["items"] / row["times"][lib]["median"] for lib in LIBS]
    return " / ".join(f"{r:.1f}" for r in rates)


CORE_HEADER = [
    "case",
    "nibabel ms, median [min–max]",
    "gpuimg ms, median [min–max]",
    "speed-up",
    "target",
    "vol/s nib / gpuimg",
    "peak mem ÷ output, nibabel (tracemalloc / RSS)",
    "peak mem ÷ output, gpuimg (tracemalloc / RSS)",
]


def core_cells(result: dict[str, Any]) -> list[list[str]]:
    """One list of cells per core row, in :data:`CORE_HEADER` order."""
    cells = []
    for row in result["rows"]:
        memory = row["memory"] or {}
        cells.append(
            [
                row["label"],
                _spread(row["times"]["nibabel"]),
                _spread(row["times"]["gpuimg"]),
                f"{row['speedup']:.2f}×",
                _target_cell(row),
                _rate_cell(row),
                *(_memory_cell(memory.get(lib)) for lib in LIBS),
            ]
        )
    return cells


def gpu_cells(gpu: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the GPU table (disk → CuPy float32)."""
    header = [
        "case",
        "library",
        "wall ms, median [min–max]",
        "event ms",
        "PCIe MB",
        "GB/s over PCIe",
    ]
    cells = []
    for row in gpu["rows"]:
        for lib in LIBS:
            entry = row["libs"][lib]
            cells.append(
                [
                    row["label"],
                    lib,
                    _spread(entry["wall"]),
                    _ms(entry["event"]["median"]),
                    f"{entry['pcie_bytes'] / 1e6:.1f}",
                    f"{entry['pcie_gbps']:.2f}",
                ]
            )
    return header, cells


def loader_cells(loader: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the loader table (volumes/s per epoch), then one row per ratio."""
    header = ["loader", "epoch ms, median [min–max]", "volumes/s (median)"]
    cells = [
        [name, _spread(entry["epoch"]), f"{entry['volumes_per_s']:.1f}"]
        for name, entry in loader["loaders"].items()
    ]
    cells += [[key, "", f"{ratio:.2f}×"] for key, ratio in loader.get("ratios", {}).items()]
    return header, cells


def _text_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *cells]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _markdown_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(r) + " |" for r in [header, *cells]]
    lines.insert(1, "|" + "---|" * len(header))
    return "\n".join(lines)


def render(result: dict[str, Any], *, markdown: bool = False) -> str:
    """All tables of ``result`` (core rows, GPU, loader) as plain text or Markdown."""
    table = _markdown_table if markdown else _text_table
    parts = [table(CORE_HEADER, core_cells(result))]
    for name, cells_of in (("gpu", gpu_cells), ("loader", loader_cells)):
        section = result.get(name)
        if section is None:
            continue
        title = f"{name}: skipped: {section['skipped']}" if "skipped" in section else name
        parts.append(title if "skipped" in section else f"{title}\n\n{table(*cells_of(section))}")
    start, end = result["load_average_1min"]
    cores = result["machine"]["usable_cores"]
    parts.append(
        f"gpuimg {result['gpuimg_revision']}; load average (1 min) at start / end: "
        f"{start} / {end} on {cores} cores"
    )
    return "\n\n".join(parts)


def plot_ratios(result: dict[str, Any], path: str | Path) -> bool:
    """Bar chart of the speed-ups with their targets; False (nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = result["rows"][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.4))
    ypos = range(len(rows))
    colors = [
        "tab:green" if r["target_met"] else "tab:red" if r["target"] else "tab:blue" for r in rows
    ]
    # bars grow from 1x on a log axis, so "2x faster" and "2x slower" look alike in size
    ax.barh(ypos, [r["speedup"] - 1.0 for r in rows], left=1.0, color=colors)
    ax.set_xscale("log")
    for y, r in zip(ypos, rows, strict=True):
        if r["target"]:
            ax.plot([r["target"]] * 2, [y - 0.4, y + 0.4], color="black", lw=2)
        right = max(r["speedup"], r["target"] or 0.0, 1.0)
        ax.text(right * 1.04, y, f"{r['speedup']:.2f}×", va="center", fontsize=8)
    ax.axvline(1.0, color="grey", lw=1)
    ticks = [0.1, 0.3, 1, 3, 10, 30]
    ax.set_xticks(ticks, [f"{t:g}×" for t in ticks])
    ax.set_xlim(
        min(0.8, *(0.7 * r["speedup"] for r in rows)), max(5.0, *(2 * r["speedup"] for r in rows))
    )
    ax.set_yticks(list(ypos), [r["label"] for r in rows], fontsize=8)
    ax.set_xlabel(
        "speed-up over nibabel: nibabel median ÷ gpuimg median (log scale)\n"
        "black tick: target · green: met · red: not met · blue: no target"
    )
    machine = result["machine"]
    ax.set_title(
        f"gpuimg vs nibabel {machine['versions']['nibabel']}, {machine['usable_cores']} cores "
        f"({machine['cpu_model']}), {result['date'][:10]}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> None:
    """Command line: print the tables of a saved result, optionally plot it."""
    parser = argparse.ArgumentParser(description="Render a saved benchmark result.")
    parser.add_argument("result", type=Path)
    parser.add_argument("--markdown", action="store_true", help="Markdown tables instead of text")
    parser.add_argument("--plot", type=Path, help="write the speed-up bar chart (PNG) here")
    args = parser.parse_args(argv)
    result = json.loads(args.result.read_text(encoding="utf-8"))
    print(render(result, markdown=args.markdown))
    if args.plot is not None and not plot_ratios(result, args.plot):
        print("plot skipped: matplotlib is not installed")


if __name__ == "__main__":
    main()
