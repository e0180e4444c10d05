"""Higher derivatives of tanh, nested to sixth order (the figure in HIPS autograd's README).

    python -m examples.tanh_derivatives          # writes tanh_derivatives.png with matplotlib

Each derivative is `elementwise_grad` of the previous one; tapegrad traces through its
own reverse pass, so derivatives compose to any order.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tapegrad as tg


def elementwise_grad(f):
    """`tg.elementwise_grad` when available; otherwise the same thing as grad of a sum."""
    if hasattr(tg, "elementwise_grad"):
        return tg.elementwise_grad(f)
    return tg.grad(lambda x: np.sum(f(x)))


def tanh(x):
    return (1.0 - np.exp(-2 * x)) / (1.0 + np.exp(-2 * x))


def derivatives(x, order: int = 6) -> list:
    fs = [tanh]
    for _ in range(order):
        fs.append(elementwise_grad(fs[-1]))
    return [f(x) for f in fs]


def main(order: int = 6, n: int = 200, png: str | None = "tanh_derivatives.png",
         verbose: bool = True) -> dict:
    x = np.linspace(-7, 7, n)
    t0 = time.perf_counter()
    ys = derivatives(x, order)
    if verbose:
        print(f"tanh and its first {order} derivatives at {n} points in "
              f"{time.perf_counter() - t0:.2f} s")
        for k, y in enumerate(ys):
            print(f"  d^{k} tanh: at x=0.5 {np.interp(0.5, x, y):+.4f}, max |.| {np.abs(y).max():.3f}")
    written = None
    if png:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            if verbose:
                print("matplotlib is not installed: no figure (pip install -e '.[examples]')")
        else:
            fig, ax = plt.subplots(figsize=(7, 4))
            for y in ys:
                ax.plot(x, y)
            ax.set_axis_off()
            fig.tight_layout()
            fig.savefig(png, dpi=100)
            plt.close(fig)
            written = png
            if verbose:
                print(f"wrote {png}")
    return {"x": x, "ys": ys, "png": written}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--png", default="tanh_derivatives.png")
    p.add_argument("--order", type=int, default=6)
    a = p.parse_args()
    main(order=a.order, png=a.png)
