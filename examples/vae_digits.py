"""Yota's variational autoencoder (`examples/vae.jl`), on scikit-learn's 8x8 digits.

    pip install -e '.[examples]' && python -m examples.vae_digits   # writes vae_digits.png

The model is a dataclass of `Linear` dataclasses, as in Yota; `tg.grad` returns gradients
keyed by field path (`("enc_i2h", "W")`, ...) and `tg.update` applies an Adam step to every
leaf. The reparameterisation noise is an *argument* of the loss, not drawn inside it:
`tg.grad(..., dynamic=True)` replays a cached tape, on which anything computed from no
argument (a random draw included) is a constant fixed at trace time.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

import tapegrad as tg
from examples.mlp_digits import load_data


@dataclass
class Linear:
    W: np.ndarray
    b: np.ndarray

    def __call__(self, x):
        return x @ self.W + self.b


def linear(n_in: int, n_out: int, rng: np.random.Generator) -> Linear:
    return Linear(rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_out)), np.zeros(n_out))


@dataclass
class VAE:
    enc_i2h: Linear          # input to hidden
    enc_h2mu: Linear         # hidden to mu
    enc_h2logsigma2: Linear  # hidden to log(sigma^2)
    dec_z2h: Linear          # z to hidden
    dec_h2o: Linear          # hidden to output logits


def init(n_in: int, hidden: int, latent: int, rng: np.random.Generator) -> VAE:
    return VAE(linear(n_in, hidden, rng), linear(hidden, latent, rng),
               linear(hidden, latent, rng), linear(latent, hidden, rng),
               linear(hidden, n_in, rng))


def encode(m: VAE, x):
    h = np.tanh(m.enc_i2h(x))
    return m.enc_h2mu(h), m.enc_h2logsigma2(h)


def decode(m: VAE, z):
    """Pixel logits."""
    return m.dec_h2o(np.tanh(m.dec_z2h(z)))


def vae_loss(m: VAE, x, eps):
    """Negative ELBO per image: Bernoulli reconstruction + KL(q(z|x) || N(0, I))."""
    mu, log_sigma2 = encode(m, x)
    z = mu + np.exp(0.5 * log_sigma2) * eps
    logits = decode(m, z)
    # log p(x|z) = x*l - log(1 + e^l), written without overflow
    rec = np.sum(x * logits - (np.maximum(logits, 0.0) + np.log1p(np.exp(-np.abs(logits)))))
    kld = -0.5 * np.sum(1.0 + log_sigma2 - mu * mu - np.exp(log_sigma2))
    return -(rec - kld) / x.shape[0]


def figure(m: VAE, X, y, png: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    mu, _ = encode(m, X)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 5))
    sc = a.scatter(mu[:, 0], mu[:, 1], c=y, cmap="tab10", s=6)
    fig.colorbar(sc, ax=a, ticks=range(10))
    a.set_title("latent means of the test digits")
    n = 10
    g = np.linspace(-2.0, 2.0, n)
    Z = np.array([[zx, zy] for zy in g[::-1] for zx in g])
    imgs = 1.0 / (1.0 + np.exp(-decode(m, Z)))
    tiles = np.zeros((n, n, 9, 9))  # one blank row and column between digits
    tiles[:, :, :8, :8] = imgs.reshape(n, n, 8, 8)
    b.imshow(tiles.transpose(0, 2, 1, 3).reshape(9 * n, 9 * n), cmap="gray_r")
    b.set_title("decoded from a latent grid")
    b.set_axis_off()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return True


def main(epochs: int = 60, batch: int = 64, hidden: int = 64, latent: int = 2, lr: float = 0.003,
         seed: int = 0, png: str | None = "vae_digits.png", verbose: bool = True) -> dict:
    Xtr, ytr, Xte, yte = load_data(seed)
    rng = np.random.default_rng(seed)
    model = init(Xtr.shape[1], hidden, latent, rng)
    mom, sq, t = {}, {}, 0

    def adam(path, gx):
        mom[path] = 0.9 * mom.get(path, 0.0) + 0.1 * gx
        sq[path] = 0.999 * sq.get(path, 0.0) + 0.001 * gx * gx
        return lr * (mom[path] / (1 - 0.9 ** t)) / (np.sqrt(sq[path] / (1 - 0.999 ** t)) + 1e-8)

    if verbose:
        print(f"digits: {len(ytr)} train / {len(yte)} test; VAE 64-{hidden}-{latent}-{hidden}-64, "
              f"tanh, Adam lr={lr}, batch {batch}")
    losses, t0 = [], time.perf_counter()
    for epoch in range(epochs):
        perm = rng.permutation(len(ytr))
        total = 0.0
        for start in range(0, len(ytr), batch):
            x = Xtr[perm[start:start + batch]]
            eps = rng.standard_normal((len(x), latent))
            val, g = tg.grad(vae_loss, model, x, eps, dynamic=True)
            t += 1
            step = {path: adam(path, gx) for path, gx in g[0].items()}
            tg.update(model, step, lambda x, d: x - d)
            total += float(val) * len(x)
        losses.append(total / len(ytr))
        if verbose and (epoch % max(1, epochs // 6) == 0 or epoch == epochs - 1):
            print(f"epoch {epoch + 1:3d}  train -ELBO {losses[-1]:.2f} nats/image")
    test_loss = float(vae_loss(model, Xte, np.zeros((len(Xte), latent))))
    written = None
    if png and figure(model, Xte, yte, png):
        written = png
    if verbose:
        print(f"test -ELBO at the latent mean {test_loss:.2f} nats/image "
              f"({time.perf_counter() - t0:.1f} s)")
        print(f"wrote {png}" if written else "matplotlib is not installed: no figure "
              "(pip install -e '.[examples]')" if png else "")
    return {"losses": losses, "test_loss": test_loss, "model": model, "png": written}


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--epochs", type=int, default=60)
    a.add_argument("--png", default="vae_digits.png")
    args = a.parse_args()
    main(epochs=args.epochs, png=args.png)
