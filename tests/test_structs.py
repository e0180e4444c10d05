"""Structured arguments: leaves found without registration, named by field paths."""

from __future__ import annotations

import dataclasses
from collections import namedtuple

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import tree

Layer = namedtuple("Layer", "W b")


@dataclasses.dataclass
class Head:
    w: np.ndarray
    scale: float
    name: str = "head"


@dataclasses.dataclass
class Net:
    layers: list
    head: Head
    extras: dict


class Plain:  # a plain object: attributes, no dataclass, no registration
    def __init__(self, v, k):
        self.v = v
        self.k = k


def make_net(rng):
    return Net(
        layers=[Layer(rng.standard_normal((3, 2)), rng.standard_normal(3)),
                Layer(rng.standard_normal((2, 3)), rng.standard_normal(2))],
        head=Head(rng.standard_normal(2), 0.5),
        extras={"unused": rng.standard_normal(4), "tup": (rng.standard_normal(2), 7), "obj": Plain(rng.standard_normal(2), 2)},
    )


def net_loss(net, x):
    h = x
    for layer in net.layers:
        h = np.tanh(layer.W @ h + layer.b)
    o = net.extras["obj"]
    return np.sum(net.head.w * h) * net.head.scale + np.sum(net.extras["tup"][0] * o.v) * o.k


def _fd_leaf(f, model, path, x, eps=1e-6):
    leaf = model
    for k in path:
        leaf = leaf[k] if isinstance(leaf, (dict, list, tuple)) and not hasattr(leaf, k if isinstance(k, str) else "") \
            else getattr(leaf, k)
    if isinstance(leaf, float):
        raise AssertionError("float leaves are checked separately")
    fd = np.zeros_like(leaf)
    for idx in np.ndindex(*leaf.shape):
        old = leaf[idx]
        leaf[idx] = old + eps
        hi = f(model, x)
        leaf[idx] = old - eps
        lo = f(model, x)
        leaf[idx] = old
        fd[idx] = (hi - lo) / (2 * eps)
    return fd


def test_nested_dataclass_list_namedtuple_dict_tuple_object():
    rng = np.random.default_rng(0)
    net, x = make_net(rng), rng.standard_normal(2)
    val, g = tg.grad(net_loss, net, x)
    assert val == pytest.approx(net_loss(net, x), rel=1e-14)
    paths = {("layers", 0, "W"), ("layers", 0, "b"), ("layers", 1, "W"), ("layers", 1, "b"),
             ("head", "w"), ("head", "scale"), ("extras", "tup", 0), ("extras", "obj", "v")}
    assert set(g[0]) == paths  # ("extras", "unused") is not used by the loss: absent
    for p in paths - {("head", "scale")}:
        np.testing.assert_allclose(g[0][p], _fd_leaf(net_loss, net, p, x), rtol=1e-6, atol=1e-8, err_msg=str(p))
    # a float leaf inside a structure; the loss is linear in it
    at = {s: net_loss(dataclasses.replace(net, head=dataclasses.replace(net.head, scale=s)), x) for s in (0.0, 1.0)}
    assert float(g[0][("head", "scale")]) == pytest.approx(at[1.0] - at[0.0], rel=1e-12)
    assert g[1].shape == (2,)


def test_shared_leaf_counted_once_under_first_path():
    """The same array reachable by two paths is ONE leaf: its gradient is the total over
    both uses, reported under the first path found (depth-first, in field order); the
    second path does not appear."""
    W = np.array([1.0, 2.0, 3.0])
    model = {"enc": {"W": W}, "dec": {"W": W}, "b": np.array([0.5])}

    def f(m):
        return np.sum(m["enc"]["W"] * 2.0) + np.sum(m["dec"]["W"] ** 2) + np.sum(m["b"])

    val, g = tg.grad(f, model)
    assert set(g[0]) == {("enc", "W"), ("b",)}
    np.testing.assert_allclose(g[0][("enc", "W")], 2.0 + 2 * W)
    # update applies it once, and the shared array stays shared
    tg.update(model, g[0], lambda x, gx: x - 0.1 * gx)
    np.testing.assert_allclose(model["dec"]["W"], [1.0 - 0.4, 2.0 - 0.6, 3.0 - 0.8])
    assert model["enc"]["W"] is model["dec"]["W"]


def test_leaves_not_used_are_absent_and_zero_when_nothing_is_used():
    m = {"a": np.ones(2), "b": np.ones(3)}
    _, g = tg.grad(lambda m: np.sum(m["a"]), m)
    assert list(g[0]) == [("a",)]
    _, g = tg.grad(lambda m, x: np.sum(x), m, np.ones(2))
    assert g[0] == {}


def test_non_differentiable_args_give_none_and_floats_give_floats():
    def f(x, n, name, flag, nothing, s, ints):
        assert isinstance(n, int) and name == "k" and flag is True and nothing is None
        return np.sum(x) * n * s + np.sum(ints)

    val, g = tg.grad(f, np.ones(2), 3, "k", True, None, 2.0, np.arange(3))
    assert val == 15.0
    np.testing.assert_array_equal(g[0], [6.0, 6.0])
    assert g[1] is None and g[2] is None and g[3] is None and g[4] is None
    assert g[5] == 6.0 and type(g[5]) is float
    assert g[6] is None  # an integer array is not differentiable
    assert len(g) == 7


def test_float32_leaves_keep_dtype():
    m = {"W": np.ones((2, 2), np.float32), "b": np.zeros(2, np.float32)}
    _, g = tg.grad(lambda m: np.sum(m["W"] @ np.ones(2, np.float32) + m["b"]), m)
    assert g[0][("W",)].dtype == np.float32 and g[0][("b",)].dtype == np.float32


def test_update_in_place_for_every_container():
    rng = np.random.default_rng(1)
    net, x = make_net(rng), rng.standard_normal(2)
    ids = {p: id(a) for p, a in [(("layers", 0, "W"), net.layers[0].W), (("head", "w"), net.head.w),
                                  (("extras", "tup", 0), net.extras["tup"][0])]}
    before = net_loss(net, x)
    old_scale = net.head.scale
    _, g = tg.grad(net_loss, net, x)
    expect_w = net.head.w - 0.01 * g[0][("head", "w")]
    out = tg.update(net, g[0], lambda a, ga: a - 0.01 * ga)
    assert out is net
    assert net_loss(net, x) < before
    np.testing.assert_allclose(net.head.w, expect_w)
    assert id(net.layers[0].W) == ids[("layers", 0, "W")]  # arrays inside a namedtuple: in place
    assert id(net.extras["tup"][0]) == ids[("extras", "tup", 0)]
    assert id(net.head.w) == ids[("head", "w")]
    assert isinstance(net.head.scale, float) and net.head.scale != old_scale  # attribute set


def test_update_float_leaf_in_tuple_is_a_clear_error():
    m = {"t": (1.5, 2)}
    _, g = tg.grad(lambda m: m["t"][0] ** 2, m)
    assert g[0] == {("t", 0): 3.0}
    with pytest.raises(TypeError, match="immutable tuple"):
        tg.update(m, g[0], lambda a, ga: a - ga)


def test_plain_array_update():
    x = np.array([1.0, 2.0])
    _, g = tg.grad(lambda x: np.sum(x ** 2), x)
    assert tg.update(x, g[0], lambda a, ga: a - 0.25 * ga) is x
    np.testing.assert_allclose(x, [0.5, 1.0])


def test_function_transform_keeps_structure():
    m = {"a": np.array([1.0, 2.0]), "b": (np.array(3.0), 4.0), "n": 5}
    g = tg.grad(lambda m: np.sum(m["a"] ** 2) * m["b"][0] + m["b"][1] * m["n"])(m)
    assert set(g) == {"a", "b", "n"} and isinstance(g["b"], tuple)
    np.testing.assert_allclose(g["a"], 2 * m["a"] * 3.0)
    assert float(g["b"][0]) == 5.0 and float(g["b"][1]) == 5.0
    assert g["n"] == 5  # static leaves are carried over


def test_cycle_is_a_clear_error():
    a = {"x": np.ones(2)}
    a["self"] = a
    with pytest.raises(ValueError, match="cycle"):
        tg.grad(lambda a: np.sum(a["x"]), a)


def test_grad_result_slices_and_negative_indices_while_lazy():
    x, y = np.arange(3.0), np.ones(3)
    f = lambda x, y: np.sum(x ** 2 * y)  # noqa: E731
    _, g = tg.grad(f, x, y)
    a, b = g[:2]
    np.testing.assert_array_equal(a, 2 * x * y)
    np.testing.assert_array_equal(b, x ** 2)
    _, g = tg.grad(f, x, y)
    np.testing.assert_array_equal(g[-1], x ** 2)
    np.testing.assert_array_equal(g[::-1][1], 2 * x * y)
    with pytest.raises(IndexError, match="out of range: the function has 2 arguments"):
        g[2]


def test_function_form_gives_each_slot_its_partial():
    # the same array at two places of a dict: per-slot partials, as autograd and JAX
    a = np.ones(2)
    f = lambda d: np.sum(d["x"] * 3 + d["y"])  # noqa: E731
    g = tg.grad(f)({"x": a, "y": a})
    np.testing.assert_array_equal(g["x"], [3.0, 3.0])
    np.testing.assert_array_equal(g["y"], [1.0, 1.0])
    val, g2 = tg.value_and_grad(f)({"x": a, "y": a})
    assert val == 8.0 and np.array_equal(g2["y"], [1.0, 1.0])
    # nested (recorded inside another trace) agrees
    h = lambda s: np.sum(tg.grad(f)({"x": a * s, "y": a * s})["x"] * s)  # noqa: E731
    assert tg.grad(h)(2.0) == 6.0
    # the Yota form counts a shared leaf once (tied weights), under its first path
    _, gy = tg.grad(f, {"x": a, "y": a})
    assert list(gy[0]) == [("x",)] and np.array_equal(gy[0][("x",)], [4.0, 4.0])


def test_update_checks_every_path_before_writing():
    p = {"t": (np.ones(2), 3.0)}
    _, g = tg.grad(lambda p: np.sum(p["t"][0]) * p["t"][1], p)
    with pytest.raises(TypeError, match=r"cannot update field path \('t', 1\)"):
        tg.update(p, g[0], lambda x, gx: x - 0.1 * gx)
    np.testing.assert_array_equal(p["t"][0], [1.0, 1.0])  # nothing was written


def test_missing_return_and_non_scalar_outputs_are_named():
    def loss(x):
        np.sum(x ** 2)  # no return

    with pytest.raises(TypeError, match="returned None"):
        tg.grad(loss)(np.ones(3))
    with pytest.raises(TypeError, match="returned None"):
        tg.grad(loss, np.ones(3))
    with pytest.raises(TypeError, match="needs a scalar output, got a tuple"):
        tg.grad(lambda x: (np.sum(x), 1.0))(np.ones(3))


def test_flatten_flat_sequence_shortcut_matches_the_walk():
    """A flat tuple/list of arrays takes a cached shortcut in tree.flatten; its result is the
    general walk's, shared leaves (tied weights) and share=False included."""
    a, b = np.ones(2), np.zeros(3)
    for seq in (tuple, list):
        paths, leaves, td = tree.flatten(seq([a, b]))
        assert paths == [(0,), (1,)] and leaves[0] is a and leaves[1] is b
        assert td == (seq, ((0, ("leaf", 0, "array")), (1, ("leaf", 1, "array"))))
        paths, leaves, td = tree.flatten(seq([a, a]))  # one object twice: one leaf
        assert paths == [(0,)] and len(leaves) == 1
        assert td == (seq, ((0, ("leaf", 0, "array")), (1, ("leaf", 0, "array"))))
        paths, leaves, td = tree.flatten(seq([a, a]), share=False)
        assert paths == [(0,), (1,)] and len(leaves) == 2
        assert td == (seq, ((0, ("leaf", 0, "array")), (1, ("leaf", 1, "array"))))
        paths.append("mutated")  # callers own the lists they get
        assert tree.flatten(seq([a, b]))[0] == [(0,), (1,)]
