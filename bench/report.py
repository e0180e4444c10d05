"""Turn a pytest-benchmark JSON file into a markdown table and a bar chart PNG.

    python bench/report.py results.json [--png docs/bench.png] [--baseline numpy_by_hand]

Prints one table per benchmark group: min and median time per call, and the ratio of the
min to the baseline's min in the same group (the uncontended cost; compare only within a
run). The chart (matplotlib, optional) shows min time per call, one panel per group.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections import defaultdict


def load(path: str) -> tuple[dict, dict[str, list[dict]]]:
    with open(path) as fh:
        data = json.load(fh)
    groups: dict[str, list[dict]] = defaultdict(list)
    for b in data["benchmarks"]:
        groups[b.get("group") or "ungrouped"].append(
            {"name": b["name"].removeprefix("test_"), "min": b["stats"]["min"],
             "median": b["stats"]["median"], "rounds": b["stats"]["rounds"]})
    return data, groups


def _fmt_us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.1f}" if us < 100 else f"{us:,.0f}"


def machine_line(data: dict) -> str:
    m = data.get("machine_info", {})
    cpu = (m.get("cpu") or {}).get("brand_raw") or m.get("processor") or platform.processor()
    date = (data.get("datetime") or "")[:10]
    return (f"{date}, {cpu}, {(m.get('cpu') or {}).get('count', '?')} cores, "
            f"Python {m.get('python_version', platform.python_version())}, one BLAS thread")


def markdown(data: dict, groups: dict[str, list[dict]], baseline: str = "numpy_by_hand") -> str:
    lines = [f"Measured {machine_line(data)}.", ""]
    for group, rows in groups.items():
        base = next((r["min"] for r in rows if r["name"] == baseline), None)
        lines += [f"**{group}**", "", "| implementation | min µs | median µs | x " + baseline + " (min) |",
                  "|---|---:|---:|---:|"]
        for r in sorted(rows, key=lambda r: r["min"]):
            ratio = f"{r['min'] / base:.2f}" if base else "–"
            lines.append(f"| {r['name']} | {_fmt_us(r['min'])} | {_fmt_us(r['median'])} | {ratio} |")
        lines.append("")
    return "\n".join(lines)


def chart(groups: dict[str, list[dict]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(groups), 1, figsize=(7, 1.2 + 0.45 * sum(map(len, groups.values()))),
                             squeeze=False)
    for ax, (group, rows) in zip(axes[:, 0], groups.items()):
        rows = sorted(rows, key=lambda r: -r["min"])
        names = [r["name"] for r in rows]
        vals = [r["min"] * 1e6 for r in rows]
        colors = ["tab:orange" if n.startswith("tapegrad") else "tab:gray" for n in names]
        ax.barh(names, vals, color=colors)
        for y, v in enumerate(vals):
            ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
        ax.set_title(group, fontsize=9)
        ax.set_xlabel("min µs per call (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json")
    p.add_argument("--png", default=None, help="write a bar chart here (needs matplotlib)")
    p.add_argument("--baseline", default="numpy_by_hand")
    a = p.parse_args(argv)
    data, groups = load(a.json)
    md = markdown(data, groups, a.baseline)
    print(md)
    if a.png:
        chart(groups, a.png)
        print(f"![benchmarks]({a.png})")
    return md


if __name__ == "__main__":
    main()
