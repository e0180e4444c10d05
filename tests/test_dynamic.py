"""The dynamic cache (`tg.jit`, `grad(..., dynamic=True)`): guards select the right tape,
a failed guard re-traces, statistics are exact, eviction is LRU, threads are safe."""

import threading

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.dynamic import dynamic_grad


def fd_grad(f, x, eps=1e-6):
    x = np.asarray(x, dtype=float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


# -- control flow on traced values ----------------------------------------------------------


def trip_count(x, n):
    for _ in range(int(n)):  # int guard
        x = np.sin(x) * 1.5
    return np.sum(x * x)


def branch(x):
    if np.sum(x) > 0:  # bool guard
        return np.sum(x ** 2)
    return np.sum(np.exp(x))


def halve(x):
    # recursion depth depends on the data
    if np.max(np.abs(x)) < 1.0:
        return np.sum(x ** 3)
    return halve(x * 0.5) + np.sum(np.tanh(x))


def early_return(x):
    acc = 0.0
    for i in range(len(x)):  # len: static, given the shape
        acc = acc + x[i] * x[i]
        if acc > 2.0:
            return acc * 3.0
    return acc


def shrink(x):
    while np.sum(x * x) > 1.0:
        x = x * 0.7 + 0.01 * np.sin(x)
    return np.sum(x)


CASES = [
    (branch, [np.array([1.0, 2.0, -0.5]), np.array([-1.0, -2.0, 0.5])], 2),
    (halve, [np.array([0.3, -0.2]), np.array([1.5, 0.2]), np.array([3.5, -1.0]),
             np.array([0.1, 0.9])], 3),
    (early_return, [np.array([0.5, 0.5, 0.5, 0.5]), np.array([1.0, 1.2, 0.1, 0.1]),
                    np.array([2.0, 0.1, 0.1, 0.1]), np.array([1.0, 0.8, 0.7, 0.6])], 4),
    (shrink, [np.array([0.2, 0.3]), np.array([1.0, 1.0]), np.array([3.0, -2.0])], 3),
]


@pytest.mark.parametrize("f,xs,paths", CASES, ids=[c[0].__name__ for c in CASES])
def test_paths_interleaved_in_one_cache(f, xs, paths):
    jf = tg.jit(tg.value_and_grad(f))
    order = list(range(len(xs))) * 3
    order = order[::2] + order[1::2]  # interleave: paths alternate
    for k in order:
        x = xs[k]
        val, g = jf(x)
        np.testing.assert_allclose(val, f(x), rtol=1e-12)
        np.testing.assert_allclose(g, fd_grad(f, x), rtol=1e-6, atol=1e-8)
        v2, g2 = tg.grad(f, x, dynamic=True)
        np.testing.assert_allclose(v2, val, rtol=1e-12)
        np.testing.assert_allclose(g2[0], g, rtol=1e-12)
    info = jf.cache_info()
    assert info.entries == paths
    assert info.misses == paths
    assert info.hits == len(order) - paths


def test_traced_trip_count():
    jf = tg.jit(tg.value_and_grad(trip_count))
    x = np.array([0.3, -0.7, 1.1])
    for n in [1.0, 3.0, 2.0, 3.0, 1.0, 2.0]:  # float n: a traced leaf, int(n) guards it
        val, g = jf(x, n)
        np.testing.assert_allclose(val, trip_count(x, n), rtol=1e-12)
        np.testing.assert_allclose(g, fd_grad(lambda z: trip_count(z, n), x), rtol=1e-6)
    assert jf.cache_info()[:4] == (3, 3, 2, 3)  # one signature; 2 of 3 traces were retraces


def test_yota_iterative_never_stale():
    def iterative(x, n):
        for _ in range(n):
            x = x * 2
        return x

    assert [tg.grad(iterative, 1.0, n)[1][0] for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert [tg.grad(iterative, 1.0, n, dynamic=True)[1][0] for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert [tg.grad(iterative, 1.0, n, dynamic=True)[1][0] for n in (3, 2, 1)] == [8.0, 4.0, 2.0]
    info = dynamic_grad(iterative).cache_info()
    assert (info.hits, info.misses, info.retraces, info.entries) == (3, 3, 0, 3)
    # a traced n (0-d array): the int guard makes one signature hold three entries
    assert [tg.grad(iterative, 1.0, np.array(n), dynamic=True)[1][0]
            for n in (1, 2, 3, 1)] == [2.0, 4.0, 8.0, 2.0]


# -- statistics, printing, eviction ------------------------------------------------------------


def test_scripted_statistics():
    def f(x, n):
        y = x * n
        if np.sum(y) > 0:
            return y * 2.0
        return -y

    jf = tg.jit(f)
    pos, neg = np.array([1.0, 2.0]), np.array([-1.0, -2.0])
    script = [(pos, 1), (pos, 1), (neg, 1), (pos, 1), (neg, 1), (pos, 2), (np.ones(4), 1),
              (neg, 1)]
    for x, n in script:
        np.testing.assert_array_equal(jf(x, n), f(x, n))
    assert jf.cache_info() == (4, 4, 1, 4, 64)
    assert jf.stats == {"hits": 4, "misses": 4, "retraces": 1, "entries": 4, "maxsize": 64}
    text = "\n".join(str(t) for t in jf.tapes)
    assert "guard bool(%" in text and "== True" in text and "== False" in text
    jf.cache_clear()
    assert jf.cache_info() == (0, 0, 0, 0, 64)


def test_static_values_and_structure_are_the_signature():
    def f(p, cfg):
        h = p["W"] @ p["x"]
        for _ in range(cfg["n"]):
            h = np.tanh(h) if cfg["act"] == "tanh" else np.sin(h)
        return np.sum(h) if cfg["scale"] is None else np.sum(h) * cfg["scale"]

    rng = np.random.default_rng(0)
    p = {"W": rng.normal(size=(3, 3)), "x": rng.normal(size=3)}
    cfgs = [dict(n=1, act="tanh", scale=None), dict(n=2, act="tanh", scale=None),
            dict(n=1, act="sin", scale=None), dict(n=1, act="tanh", scale=2)]
    for cfg in cfgs * 2:
        val, g = tg.grad(f, p, cfg, dynamic=True)
        val0, g0 = tg.grad(f, p, cfg)
        assert val == val0 and g[1] == g0[1]  # None: nothing differentiable in cfg
        assert g[0].keys() == g0[0].keys() == {("W",), ("x",)}
        for k in g0[0]:
            np.testing.assert_array_equal(g[0][k], g0[0][k])
    info = dynamic_grad(f).cache_info()
    assert (info.hits, info.misses, info.retraces, info.entries) == (4, 4, 0, 4)


def test_item_and_float_guards():
    def f(x):
        if x[0].item() > 0:  # item guard: x[0] is compared with its traced value exactly
            return np.sum(x * 2.0)
        return np.sum(x * float(np.sum(x)))  # float guard: the value is baked in

    jf = tg.jit(tg.value_and_grad(f))
    a, b, c = np.array([1.0, 2.0]), np.array([-1.0, 2.0]), np.array([-1.0, 3.0])
    for x in [a, b, a * 2, c, b, c]:
        val, g = jf(x)
        assert val == f(x)
        # float() stops the gradient: d/dx (x * const) = const
        np.testing.assert_array_equal(g, [2.0, 2.0] if x[0] > 0 else [np.sum(x)] * 2)
    # the item guard holds only for the traced x[0]; the float guard only for sum(x)
    assert jf.cache_info()[:4] == (2, 4, 3, 4)
    text = "\n".join(map(str, jf.tapes))
    assert "guard item(%" in text and "guard float(%" in text


def test_len_is_static():
    jf = tg.jit(lambda x: sum(x[i] for i in range(len(x))))
    assert jf(np.ones(3)) == 3.0 and jf(np.ones(3) * 2) == 6.0 and jf(np.ones(5)) == 5.0
    assert all(not t.guards for t in jf.tapes)
    assert jf.cache_info()[:4] == (1, 2, 0, 2)


def test_eviction_lru():
    jf = tg.jit(lambda x: np.sum(x * x), maxsize=2)
    a, b, c = np.ones(1), np.ones(2), np.ones(3)
    jf(a), jf(b), jf(a), jf(c)  # a was used after b: b is the least recently used
    assert jf.cache_info() == (1, 3, 0, 2, 2)
    assert jf(a) == 1.0 and jf(c) == 3.0
    assert jf.cache_info() == (3, 3, 0, 2, 2)
    assert jf(b) == 2.0  # evicted: traced again, which evicts a
    assert jf.cache_info() == (3, 4, 0, 2, 2)
    jf(a)
    assert jf.cache_info().misses == 5


def test_eviction_within_one_signature():
    jf = tg.jit(lambda x: x * 2 if np.sum(x) > 0 else x * 3, maxsize=1)
    assert jf(np.ones(2))[0] == 2 and jf(-np.ones(2))[0] == -3 and jf(np.ones(2))[0] == 2
    assert jf.cache_info() == (0, 3, 2, 1, 1)


# -- data-dependent shapes -------------------------------------------------------------------


def test_boolean_mask_shape_is_guarded():
    def m(x):
        return np.sum(x[x > 0] ** 2)

    jf = tg.jit(tg.value_and_grad(m))
    xs = [np.array([1.0, -2.0, 3.0]), np.array([1.0, 2.0, 3.0]), np.array([-1.0, 2.0, 3.0]),
          np.array([-1.0, -2.0, 3.0])]
    for x in xs + xs:
        val, g = jf(x)
        assert val == np.sum(x[x > 0] ** 2)
        np.testing.assert_array_equal(g, np.where(x > 0, 2 * x, 0.0))
    # [1,-2,3] and [-1,2,3] select 2 elements: one entry, the shape guard holds for both
    assert jf.cache_info()[:4] == (5, 3, 2, 3)
    assert any("guard shape(%3) == (2,)" in str(t) for t in jf.tapes)


# -- what is not an input: baked in at trace time ----------------------------------------------

SCALE = 2.0


def scaled(x):
    return x * SCALE


def test_globals_are_baked_in_constants():
    global SCALE
    SCALE = 2.0
    jf = tg.jit(scaled)
    x = np.array([1.0, 2.0])
    np.testing.assert_array_equal(jf(x), [2.0, 4.0])
    try:
        SCALE = 3.0
        np.testing.assert_array_equal(jf(x), [2.0, 4.0])  # documented: baked in, not re-read
        np.testing.assert_array_equal(jf(np.ones(3)), [3.0, 3.0, 3.0])  # a new trace reads it
        jf.cache_clear()
        np.testing.assert_array_equal(jf(x), [3.0, 6.0])
        # the default grad re-traces every call: never stale
        assert tg.grad(lambda z: np.sum(scaled(z)), x)[1][0].tolist() == [3.0, 3.0]
    finally:
        SCALE = 2.0


def test_closure_cells_and_attributes_are_baked_in():
    class Model:
        def __init__(self):
            self.W = np.array([1.0, 2.0])
            self.depth = 1

    k = 2.0

    def loss(x):
        return np.sum(x * k)

    jf = tg.jit(tg.grad(loss))
    assert jf(np.ones(2)).tolist() == [2.0, 2.0]
    k = 5.0  # noqa: F841  (closure cell changes: the cached tape keeps 2.0)
    assert jf(np.ones(2)).tolist() == [2.0, 2.0]

    # a non-leaf attribute of an *argument* is static structure: part of the signature
    def fm(model, x):
        for _ in range(model.depth):
            x = np.tanh(x * model.W)
        return np.sum(x)

    m = Model()
    x = np.array([0.3, 0.4])
    v1, g1 = tg.grad(fm, m, x, dynamic=True)
    m.depth = 2
    v2, g2 = tg.grad(fm, m, x, dynamic=True)
    assert v2 == fm(m, x) and v1 != v2
    np.testing.assert_allclose(g2[1], fd_grad(lambda z: fm(m, z), x), rtol=1e-6)
    np.testing.assert_allclose(g2[0][("W",)], fd_grad(lambda w: fm(_with_w(m, w), x), m.W),
                               rtol=1e-6)
    assert dynamic_grad(fm).cache_info().misses == 2


def _with_w(m, w):
    m2 = type(m)()
    m2.W, m2.depth = w, m.depth
    return m2


# -- calling conventions ----------------------------------------------------------------------


def test_keyword_arguments_are_arguments():
    def f(x, scale=1.0, mode="sum"):
        y = x * scale
        return np.sum(y) if mode == "sum" else np.max(y)

    jf = tg.jit(f)
    x = np.array([1.0, 3.0])
    assert jf(x, scale=2.0) == 8.0 and jf(x, scale=3.0) == 12.0 and jf(x, mode="max") == 3.0
    assert jf.cache_info()[:4] == (1, 2, 0, 2)  # scale is a traced leaf; mode is static
    v, g = tg.grad(f, x, dynamic=True, scale=4.0)
    assert v == 16.0 and g[0].tolist() == [4.0, 4.0] and len(g) == 1


def test_jit_as_method_decorator():
    class Layer:
        def __init__(self, W, act):
            self.W, self.act = W, act

        @tg.jit
        def __call__(self, x):
            h = x @ self.W
            return np.tanh(h) if self.act == "tanh" else h

    layer = Layer(np.eye(2) * 2.0, "tanh")
    x = np.array([0.1, 0.2])
    np.testing.assert_allclose(layer(x), np.tanh(2 * x))
    layer.W = np.eye(2) * 3.0  # an array attribute is an input leaf: seen without re-tracing
    np.testing.assert_allclose(layer(x), np.tanh(3 * x))
    layer.act = "linear"  # a static attribute is part of the signature
    np.testing.assert_allclose(layer(x), 3 * x)
    assert Layer.__call__.cache_info()[:3] == (1, 2, 0)


def test_replay_errors_fall_back_to_tracing():
    def f(x):
        if np.all(x > 0):
            return np.sum(np.linalg.inv(np.diag(x)))
        return np.sum(x)

    jf = tg.jit(f)
    assert jf(np.array([1.0, 2.0])) == 1.5
    assert jf(np.array([0.0, 2.0])) == 2.0  # no singular-matrix error from the wrong path
    with pytest.raises(np.linalg.LinAlgError):  # a genuine error still raises, from the trace
        tg.jit(lambda x: np.sum(np.linalg.inv(np.diag(x))))(np.array([0.0, 1.0]))


def test_jit_inside_grad_traces_through():
    jf = tg.jit(lambda x: np.sum(np.sin(x)) if np.sum(x) > 0 else np.sum(x))
    x = np.array([0.5, 1.0])
    jf(x)
    np.testing.assert_allclose(tg.grad(jf)(x), np.cos(x))
    np.testing.assert_allclose(tg.grad(jf)(-x), [1.0, 1.0])
    assert jf.cache_info()[:2] == (0, 1)  # traced calls bypass the cache


def test_value_and_grad_multiple_argnums():
    def loss(W, b, x):
        return np.sum(np.tanh(x @ W + b) ** 2)

    rng = np.random.default_rng(1)
    W, b, x = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(5, 4))
    jf = tg.jit(tg.value_and_grad(loss, argnum=(0, 1)))
    for _ in range(3):
        val, (gW, gb) = jf(W, b, x)
    val0, (gW0, gb0) = tg.value_and_grad(loss, argnum=(0, 1))(W, b, x)
    assert val == val0
    np.testing.assert_allclose(gW, gW0, rtol=1e-13)
    np.testing.assert_allclose(gb, gb0, rtol=1e-13)
    assert jf.cache_info()[:2] == (2, 1)


def test_compile_flag_gives_the_same_numbers():
    x = np.array([0.2, -0.4, 0.9])
    for _ in range(2):
        v, g = tg.grad(branch, x, compile=True)
        np.testing.assert_allclose(g[0], fd_grad(branch, x), rtol=1e-6)
        assert v == branch(x)


def test_jit_compile_flag_checks_every_guard():
    def iterative(x, n):
        for _ in range(n):  # n: a 0-d int argument, guarded on the tape input itself
            x = np.tanh(x) * 2
        return np.sum(x) if np.sum(x) > 0 else -np.sum(x)

    jf = tg.jit(iterative, compile=True)
    x = np.array([0.5, -0.25])
    for n, s in [(1, 1), (2, 1), (1, -1), (3, 1), (2, 1), (1, -1), (1, 1)]:
        np.testing.assert_allclose(jf(s * x, np.array(n)), iterative(s * x, n), rtol=1e-14)
    assert jf.cache_info()[:4] == (3, 4, 3, 4)
    jf.wait()  # compiled drivers in place (when Numba is there): the same answers
    for n, s in [(3, 1), (1, -1), (2, 1), (1, 1)]:
        np.testing.assert_allclose(jf(s * x, np.array(n)), iterative(s * x, n), rtol=1e-14)
    assert jf.cache_info()[:4] == (7, 4, 3, 4)


# -- threads ------------------------------------------------------------------------------------


def test_eight_threads():
    jf = tg.jit(tg.value_and_grad(halve), maxsize=4)  # small: eviction races with replay
    rng = np.random.default_rng(2)
    inputs = [rng.normal(size=2 + t % 3) * (0.5 + t) for t in range(8)]
    expected = [(halve(x), fd_grad(halve, x)) for x in inputs]
    errors, barrier = [], threading.Barrier(8)

    def work(t):
        barrier.wait()
        for i in range(40):
            k = (t + i) % 8 if i % 3 else t
            try:
                val, g = jf(inputs[k])
                np.testing.assert_allclose(val, expected[k][0], rtol=1e-12)
                np.testing.assert_allclose(g, expected[k][1], rtol=1e-6, atol=1e-9)
            except Exception as e:  # noqa: BLE001  (reported below)
                errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:3]
    info = jf.cache_info()
    assert info.hits + info.misses == 8 * 40 and info.entries <= 4


def test_a_broken_cached_tape_is_replaced_once_with_a_warning():
    # a cached tape that raises although its guards hold must not make every call re-trace
    jf = tg.jit(lambda x: np.sum(np.sin(x)), compile=False)
    x = np.arange(3.0)
    jf(x)
    (entry,) = jf.cache.entries()

    def broken(leaves):
        raise RuntimeError("simulated fault")

    entry.runner = broken
    with pytest.warns(RuntimeWarning, match="simulated fault"):
        assert jf(x) == pytest.approx(np.sum(np.sin(x)))
    assert jf(x) == pytest.approx(np.sum(np.sin(x)))  # the fresh entry serves it
    info = jf.cache_info()
    assert (info.hits, info.misses, info.entries) == (1, 2, 1)


def test_generated_filler_matches_fill():
    """tg.jit fills its result with a generated function (core.filler); it must build what
    the generic core.fill builds, conversions and odd templates included."""
    from collections import namedtuple

    from tapegrad.core import Slot, fill, filler

    NT = namedtuple("NT", "a b")
    outs = [np.float32(1), 2.0, np.float64(3), np.arange(3.0), np.float64(5)]
    templates = [(Slot(0), (Slot(1), Slot(2, "float"), Slot(3), Slot(4, "array0"))),
                 [Slot(0), {"a": Slot(1), 3: (Slot(2),)}], NT(Slot(0), Slot(1)),
                 {(1, 2): Slot(3)}, (Slot(0), None, 7), Slot(2, "float"), ()]
    for t in templates:
        a, b = fill(t, outs), filler(t)(outs)
        assert repr(a) == repr(b) and type(a) is type(b)
    got = filler(templates[0])(outs)
    assert type(got[1][1]) is float and type(got[1][3]) is np.ndarray and got[1][3].shape == ()
    assert got[1][2] is outs[3]  # arrays handed over, not copied
