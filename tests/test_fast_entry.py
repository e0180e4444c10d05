"""The compiled driver's fast entry for structured arguments (tuples, lists, dicts and
namedtuples of arrays and floats): it unpacks and checks leaves itself instead of
flattening (20 us a call on W3's parameter tuple), and gives exactly what the checked slow
path gives, or hands over to it: wrong structure, dtype, shape, aliasing, layouts.

Kernels share tests/.numba_cache with the rest of the suite."""

from collections import namedtuple

import numpy as np
import pytest

import tapegrad as tg

R = np.random.default_rng(5)
W = R.standard_normal((4, 3))
B = R.standard_normal(3)
X = R.standard_normal((6, 4))
P = namedtuple("P", "W b")


def loss_tuple(p, x):
    W, b = p
    return np.sum(np.tanh(x @ W + b) ** 2)


def loss_dict(p, x, s):
    return np.sum(np.tanh(x @ p["W"] + p["b"][0]) ** 2) * s + np.sum(p["b"][1])


def loss_nt(p, x):
    return np.sum(np.tanh(x @ p.W + p.b) ** 2)


def compiled(f, *args):
    _, g = tg.grad(f, *args)
    return tg.compile(g.tape, wait=True), g.tape


def test_entry_unpacks_tuple_and_matches_interpreter():
    ct, tape = compiled(loss_tuple, (W, B), X)
    assert "def entry(a0, a1):" in ct._source
    for args in [((W, B), X), ((W * 2, B - 1), X[::-1].copy())]:
        v, g = tg.play(ct, *args)
        v0, g0 = tg.play(tape, *args)
        assert v == pytest.approx(v0, rel=1e-12)
        for k in ((0,), (1,)):
            np.testing.assert_allclose(g[0][k], g0[0][k], rtol=1e-12)
        np.testing.assert_allclose(g[1], g0[1], rtol=1e-12)


def test_entry_takes_the_fast_path(monkeypatch):
    """Valid structured arguments never reach the slow path (which flattens)."""
    ct, _ = compiled(loss_tuple, (W, B), X)

    def refuse(*args):
        raise AssertionError("slow path taken")

    monkeypatch.setitem(ct.play.__globals__, "_slow", refuse)
    v, g = tg.play(ct, (W, B), X)
    assert v == pytest.approx(loss_tuple((W, B), X), rel=1e-12)
    with pytest.raises(AssertionError, match="slow path"):
        tg.play(ct, [W, B], X)  # a list: not the traced tuple, handed over


def test_entry_dict_with_list_and_float():
    p = {"W": W, "b": [B, np.ones(2)]}
    ct, tape = compiled(loss_dict, p, X, 1.5)
    v, g = tg.play(ct, p, X, 1.5)
    v0, g0 = tg.play(tape, p, X, 1.5)
    assert v == pytest.approx(v0, rel=1e-12) and type(g[2]) is float
    assert g[2] == pytest.approx(g0[2], rel=1e-12)
    for k in g0[0]:
        np.testing.assert_allclose(g[0][k], g0[0][k], rtol=1e-12)
    # keys in another insertion order: the flattened tree differs, so the slow path speaks
    with pytest.raises(ValueError, match="structure"):
        tg.play(ct, {"b": [B, np.ones(2)], "W": W}, X, 1.5)
    with pytest.raises(ValueError, match="structure"):
        tg.play(ct, {"W": W, "b": (B, np.ones(2))}, X, 1.5)  # tuple for list
    with pytest.raises(ValueError, match="dtype"):
        tg.play(ct, {"W": W.astype(np.float32), "b": [B, np.ones(2)]}, X, 1.5)
    with pytest.raises(ValueError, match="shape"):
        tg.play(ct, {"W": W, "b": [B, np.ones(3)]}, X, 1.5)


def test_entry_namedtuple():
    ct, tape = compiled(loss_nt, P(W, B), X)
    v, g = tg.play(ct, P(W, B), X)
    assert v == pytest.approx(loss_nt(P(W, B), X), rel=1e-12)
    np.testing.assert_allclose(g[0][("b",)], tg.play(tape, P(W, B), X)[1][0][("b",)], rtol=1e-12)
    with pytest.raises(ValueError, match="structure"):
        tg.play(ct, (W, B), X)  # a plain tuple is another structure


def loss_pair(p, x):
    A, C = p
    return np.sum(np.tanh(x @ A) * (x @ C))


def test_entry_hands_over_on_aliasing_and_layouts():
    A, C, x = R.standard_normal((4, 4)), R.standard_normal((4, 4)), R.standard_normal((6, 4))
    ct, tape = compiled(loss_pair, (A, C), x)
    # the same array at two leaves: flattening sees one shared leaf, another tree
    with pytest.raises(ValueError, match="structure"):
        tg.play(ct, (A, A), x)
    # a strided view and a read-only array run (copied by the slow path), same numbers
    xs = np.asfortranarray(x)
    ro = A.copy()
    ro.flags.writeable = False
    v, g = tg.play(ct, (ro, C), xs)
    v0, g0 = tg.play(tape, (A, C), x)
    assert v == pytest.approx(v0, rel=1e-12)
    for k in ((0,), (1,)):
        np.testing.assert_allclose(g[0][k], g0[0][k], rtol=1e-12)
    with pytest.raises(ValueError, match="structure"):
        tg.play(ct, (A, C, 1.0), x)  # wrong length
    with pytest.raises(ValueError, match="argument"):
        tg.play(ct, (A, C))  # wrong count
