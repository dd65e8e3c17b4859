"""Plot a benchmark report (``run.py``'s JSON) as a PNG: ms per run by framework and mode.

Usage: ``python tools/bench/plot.py RESULTS.json OUT.png``. ``run.py`` runs it with the
peers' venv, which has matplotlib, so the project's own venv does not need it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI or a server

import matplotlib.pyplot as plt

COLOURS = {
    "hand-written loop": "#7f7f7f",
    "agentkit": "#1f77b4",
    "openai-agents": "#ff7f0e",
    "pydantic-ai": "#2ca02c",
}


def plot(report: dict[str, Any], out: Path) -> None:
    """Two panels, wall ms per run and client CPU ms per run, grouped by mode."""
    rows = report["rows"]
    modes = list(dict.fromkeys(row["mode"] for row in rows))
    frameworks = list(dict.fromkeys(row["framework"] for row in rows))
    by_key = {(row["mode"], row["framework"]): row for row in rows}
    width = 0.8 / len(frameworks)
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=False)
    panels = (
        ("ms_per_run", "wall ms per run (lower is better)"),
        ("cpu_ms_per_run", "client CPU ms per run (lower is better)"),
    )
    for axis, (field, title) in zip(axes, panels, strict=True):
        for index, name in enumerate(frameworks):
            xs, heights, low, high = [], [], [], []
            for position, mode in enumerate(modes):
                row = by_key.get((mode, name))
                if row is None:
                    continue
                xs.append(position + (index - (len(frameworks) - 1) / 2) * width)
                heights.append(row[field])
                if field == "ms_per_run":
                    # Whiskers: the fastest and slowest process of the median's sample.
                    low.append(row[field] - min(row["ms_all"]))
                    high.append(max(row["ms_all"]) - row[field])
            bars = axis.bar(
                xs,
                heights,
                width,
                label=name,
                color=COLOURS.get(name),
                yerr=[low, high] if low else None,
                capsize=2,
            )
            axis.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
        axis.set_xticks(range(len(modes)), [m.replace(", ", "\n") for m in modes], fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
        axis.set_axisbelow(True)
    axes[0].set_ylabel("ms per run (2 HTTP requests, 2 tool calls)")
    axes[0].legend(fontsize=8)
    settings = report["settings"]
    figure.suptitle(
        f"One agent run against a local fake OpenAI server — median of "
        f"{settings['rounds']} process(es), openai {report['versions'].get('openai', '?')}",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main() -> None:
    """Read the report given on the command line and write the PNG."""
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py RESULTS.json OUT.png")
    report = json.loads(Path(sys.argv[1]).read_text())
    plot(report, Path(sys.argv[2]))


if __name__ == "__main__":
    main()
