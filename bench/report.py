"""Turn a pytest-benchmark JSON file into a markdown table and a bar chart PNG.

    python bench/report.py results.json [--png docs/bench.png] [--baseline numpy_hand]

Prints, when the groups share contenders (as `bench_peers.py`'s W1-W5 do), one summary
table with a row per workload and a column per contender, each cell the min time per call
and its ratio to the baseline's min in that group; then one table per group with min and
median. Min is the uncontended cost: compare only within a run. Results of
`bench_compile.py::test_interleaved_ratios` (contenders timed in turns) come first, as one
table of medians, mins and goal ratios. A parametrised name
(`numpy_hand[W1]`) is shown without its parameter, the group naming the workload. The
chart (matplotlib, optional) shows min time per call on a log scale, one panel per group.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
from collections import defaultdict

BASELINES = ("numpy_hand", "numpy_by_hand")  # bench_peers/bench_compile, bench_core
LABELS = {"numpy_hand": "NumPy by hand", "numpy_by_hand": "NumPy by hand",
          "tapegrad_grad": "tg.grad (eager)", "tapegrad_play": "tg.play (interpreter)",
          "tapegrad_compiled": "tg.play(tg.compile)", "tapegrad_jit": "tg.jit",
          "autograd": "HIPS autograd", "jax_jit": "JAX jit", "torch_eager": "PyTorch eager",
          "numba_hand": "Numba by hand"}


def load(path: str) -> tuple[dict, dict[str, list[dict]]]:
    with open(path) as fh:
        data = json.load(fh)
    groups: dict[str, list[dict]] = defaultdict(list)
    for b in data["benchmarks"]:
        if "compiled_median_us" in b.get("extra_info", {}):  # one interleaved run: see below
            continue
        groups[b.get("group") or "ungrouped"].append(
            {"name": re.sub(r"\[.*\]$", "", b["name"].removeprefix("test_")), "min": b["stats"]["min"],
             "median": b["stats"]["median"], "rounds": b["stats"]["rounds"]})
    return data, groups


def _fmt_us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.1f}" if us < 100 else f"{us:,.0f}"


def machine_line(data: dict) -> str:
    m = data.get("machine_info", {})
    cpu = (m.get("cpu") or {}).get("brand_raw") or m.get("processor") or platform.processor()
    date = (data.get("datetime") or "")[:10]
    vs = ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())
    return (f"{date}, {cpu}, {(m.get('cpu') or {}).get('count', '?')} cores, "
            f"Python {m.get('python_version', platform.python_version())}, one BLAS thread"
            + (f"; {vs}" if vs else ""))


def _base(rows: list[dict], baseline: str | None):
    names = (baseline,) if baseline else BASELINES
    return next((r["min"] for n in names for r in rows if r["name"] == n), None)


def summary(groups: dict[str, list[dict]], baseline: str | None = None) -> str:
    """One row per group, one column per contender: `min µs (x baseline)`."""
    cols = []
    for rows in groups.values():
        cols += [r["name"] for r in rows if r["name"] not in cols]
    order = list(LABELS)
    cols.sort(key=lambda n: order.index(n) if n in order else len(order))
    lines = ["| workload | " + " | ".join(LABELS.get(c, c) for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for group, rows in groups.items():
        base = _base(rows, baseline)
        by = {r["name"]: r["min"] for r in rows}
        cells = []
        for c in cols:
            t = by.get(c)
            cells.append("–" if t is None else _fmt_us(t) + (f" ({t / base:.2g})" if base else ""))
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


INTERLEAVED = (("hand", "NumPy by hand"), ("numba", "Numba by hand"), ("compiled", "tg.play(tg.compile)"),
               ("jit", "tg.jit"), ("jax", "JAX jit"))


def interleaved(data: dict) -> str:
    """`bench_compile.py::test_interleaved_ratios` results: contenders timed in turns in one
    run, so that all see the same load. One row per workload: median µs (min µs) of each,
    and the compiled tape's goal ratios by median and by min."""
    rows = [(re.search(r"\[(.*)\]", b["name"]).group(1), b["extra_info"]) for b in data["benchmarks"]
            if "compiled_median_us" in b.get("extra_info", {})]
    if not rows:
        return ""
    cols = [(k, lab) for k, lab in INTERLEAVED if any(f"{k}_median_us" in e for _, e in rows)]
    others = [k for k, _ in cols if k not in ("compiled", "jit")]
    lines = ["| workload | " + " | ".join(lab for _, lab in cols) + " | " +
             " | ".join(f"compiled / {dict(INTERLEAVED)[o]}" for o in others) + " |",
             "|---|" + "---:|" * (len(cols) + len(others))]
    for w, e in rows:
        cells = [f"{_fmt_us(e[f'{k}_median_us'] / 1e6)} ({_fmt_us(e[f'{k}_min_us'] / 1e6)})"
                 if f"{k}_median_us" in e else "–" for k, _ in cols]
        cells += [f"{e[f'compiled/{o} median']:.2f} ({e[f'compiled/{o} min']:.2f})"
                  if f"compiled/{o} median" in e else "–" for o in others]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(data: dict, groups: dict[str, list[dict]], baseline: str | None = None) -> str:
    lines = [f"Measured {machine_line(data)}.", ""]
    inter = interleaved(data)
    if inter:
        lines += ["Interleaved (contenders timed in turns, one run): median µs per call (min µs); "
                  "ratios by median (by min):", "", inter, ""]
    if len(groups) > 1:
        lines += ["min µs per call (x NumPy by hand):", "", summary(groups, baseline), ""]
    for group, rows in groups.items():
        base = _base(rows, baseline)
        lines += [f"**{group}**", "", "| implementation | min µs | median µs | x baseline (min) |",
                  "|---|---:|---:|---:|"]
        for r in sorted(rows, key=lambda r: r["min"]):
            ratio = f"{r['min'] / base:.2f}" if base else "–"
            lines.append(f"| {LABELS.get(r['name'], r['name'])} | {_fmt_us(r['min'])} | {_fmt_us(r['median'])} | {ratio} |")
        lines.append("")
    return "\n".join(lines)


def chart(groups: dict[str, list[dict]], path: str, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(len(groups), 1, squeeze=False,
                             figsize=(7, 1.0 + 0.5 * len(groups) + 0.22 * sum(map(len, groups.values()))))
    for ax, (group, rows) in zip(axes[:, 0], groups.items()):
        rows = sorted(rows, key=lambda r: -r["min"])
        names = [LABELS.get(r["name"], r["name"]) for r in rows]
        vals = [r["min"] * 1e6 for r in rows]
        colors = ["tab:orange" if r["name"].startswith("tapegrad") else
                  "tab:blue" if r["name"] in BASELINES else "tab:gray" for r in rows]
        ax.barh(names, vals, color=colors)
        for y, v in enumerate(vals):
            ax.text(v, y, f" {v:,.0f}" if v >= 10 else f" {v:.1f}", va="center", fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlim(min(vals) / 2, max(vals) * 6)
        ax.tick_params(labelsize=7)
        ax.set_title(group, fontsize=8)
    axes[-1, 0].set_xlabel("min µs per call, log scale (lower is better)")
    if title:
        import textwrap

        fig.suptitle(textwrap.fill(title, 110), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json")
    p.add_argument("--png", default=None, help="write a bar chart here (needs matplotlib)")
    p.add_argument("--baseline", default=None, help="contender to divide by (default: NumPy by hand)")
    a = p.parse_args(argv)
    data, groups = load(a.json)
    md = markdown(data, groups, a.baseline)
    print(md)
    if a.png and groups:
        chart(groups, a.png, machine_line(data))
        print(f"![benchmarks]({a.png})")
    return md


if __name__ == "__main__":
    main()
