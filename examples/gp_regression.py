"""Gaussian-process regression, hyperparameters fitted by maximising the marginal likelihood.

    python -m examples.gp_regression          # writes gp_regression.png with matplotlib

After HIPS autograd's `gaussian_process.py`. NumPy's `linalg.solve` and `slogdet` have no
built-in rule in tapegrad yet, so this example adds them as custom primitives with
`tg.primitive` + `tg.defvjp` (rules written in NumPy, so they are traced like user code).
`tg.value_and_grad` feeds SciPy's L-BFGS-B.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.optimize

import tapegrad as tg


@tg.primitive
def solve(A, b):
    """A^{-1} b for a vector b."""
    return np.linalg.solve(A, b)


@tg.primitive
def inv(A):
    return np.linalg.inv(A)


@tg.primitive
def logdet(A):
    """log |det A| of a positive-definite A."""
    return np.linalg.slogdet(A)[1]


tg.defvjp(solve, lambda ans, A, b: lambda g: -np.outer(solve(A.T, g), ans),
          lambda ans, A, b: lambda g: solve(A.T, g))
tg.defvjp(inv, lambda ans, A: lambda g: -(ans.T @ g @ ans.T))
tg.defvjp(logdet, lambda ans, A: lambda g: g * inv(A).T)


def unpack(params):
    mean, log_amp, log_len, log_noise = params[0], params[1], params[2], params[3]
    return mean, np.exp(log_amp), np.exp(log_len), np.exp(log_noise) + 1e-4


def rbf(x, xp, amp, length):
    d = (x[:, None] - xp[None, :]) / length
    return amp * np.exp(-0.5 * d * d)


def log_marginal_likelihood(params, x, y):
    mean, amp, length, noise = unpack(params)
    K = rbf(x, x, amp, length) + noise * np.eye(len(x))
    r = y - mean
    return -0.5 * (np.dot(r, solve(K, r)) + logdet(K) + len(x) * np.log(2 * np.pi))


def predict(params, x, y, xs):
    mean, amp, length, noise = unpack(params)
    K = rbf(x, x, amp, length) + noise * np.eye(len(x))
    Ks = rbf(xs, x, amp, length)
    mu = mean + Ks @ np.linalg.solve(K, y - mean)
    var = amp - np.sum(Ks * np.linalg.solve(K, Ks.T).T, axis=1)
    return mu, np.maximum(var, 0.0)


def toy_data(n: int = 40, noise: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.linspace(0, 3, n // 2), np.linspace(6, 8, n - n // 2)])
    y = np.cos(x) + 0.5 + noise * rng.standard_normal(n)
    return x, y


def main(png: str | None = "gp_regression.png", verbose: bool = True) -> dict:
    x, y = toy_data()
    objective = tg.value_and_grad(lambda p: -log_marginal_likelihood(p, x, y))
    p0 = np.array([0.0, 0.0, 0.0, 0.0])
    before = -objective(p0)[0]
    res = scipy.optimize.minimize(objective, p0, jac=True, method="L-BFGS-B")
    p = res.x
    after = -res.fun
    mean, amp, length, noise = unpack(p)
    xs = np.linspace(-1, 9, 200)
    mu, var = predict(p, x, y, xs)
    truth = np.cos(xs) + 0.5
    inside = (xs >= 0) & (xs <= 8) & ~((xs > 3.3) & (xs < 5.7))
    rmse = float(np.sqrt(np.mean((mu[inside] - truth[inside]) ** 2)))
    if verbose:
        print(f"log marginal likelihood: {before:.2f} -> {after:.2f} "
              f"({res.nit} L-BFGS iterations, {res.nfev} gradient evaluations)")
        print(f"fitted: mean {mean:.3f}, amplitude {amp:.3f}, length scale {length:.3f}, "
              f"noise std {np.sqrt(noise):.3f} (true 0.1)")
        print(f"posterior mean vs cos(x) + 0.5 near the data: RMSE {rmse:.3f}")
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
            fig, ax = plt.subplots(figsize=(7, 3.5))
            sd = np.sqrt(var + noise)
            ax.fill_between(xs, mu - 2 * sd, mu + 2 * sd, color="tab:blue", alpha=0.2,
                            label="±2 sd")
            ax.plot(xs, mu, color="tab:blue", label="posterior mean")
            ax.plot(xs, truth, "k--", lw=0.8, label="cos(x) + 0.5")
            ax.plot(x, y, "kx", label="data")
            ax.legend(fontsize=8, loc="lower left")
            ax.set_title("GP regression, hyperparameters by marginal likelihood", fontsize=9)
            fig.tight_layout()
            fig.savefig(png, dpi=100)
            plt.close(fig)
            written = png
            if verbose:
                print(f"wrote {png}")
    return {"before": before, "after": after, "params": p, "noise_std": float(np.sqrt(noise)),
            "rmse": rmse, "png": written}


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--png", default="gp_regression.png")
    main(png=a.parse_args().png)
