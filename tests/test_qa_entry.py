"""QA of the compiled driver's fast entry, `tree.flatten`'s cached shortcut, `core.filler`
and the kinds of gradients w.r.t. 0-d arrays (what changed in the fast-entry work).

The compiled tape must give what `tg.play(tape, ...)` (the interpreter) gives, or raise
the same kind of error; random structures are generated from a seed, all with the same
leaf shapes so that a handful of kernels serve every case (tests/.numba_cache).
TAPEGRAD_QA_SWEEP=<n> runs n random structures instead of the default few.
"""

import dataclasses
import os
import random
from collections import namedtuple

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import tree
from tapegrad.core import Slot, _Obj, fill, filler

NT = namedtuple("NT", "a b")
NT3 = namedtuple("NT3", "a b c")
R = np.random.default_rng(11)
A, B, C = (R.standard_normal(4) for _ in range(3))


def same(a, b, rtol=1e-12):
    """Equal trees, leaf types and dtypes, values to `rtol`."""
    pa, la, ta = tree.flatten(a, share=False)
    pb, lb, tb = tree.flatten(b, share=False)
    assert type(a) is type(b) and ta == tb, (a, b)
    for p, u, v in zip(pa, la, lb):
        assert type(u) is type(v), (p, u, v)
        assert getattr(u, "dtype", None) == getattr(v, "dtype", None), (p, u, v)
        np.testing.assert_allclose(u, v, rtol=rtol, atol=0)


def outcome(tape, *args):
    try:
        return "ok", tg.play(tape, *args)
    except (ValueError, TypeError) as e:
        return type(e).__name__, str(e)


def agree(ct, tape, *args):
    got, want = outcome(ct, *args), outcome(tape, *args)
    assert got[0] == want[0], (got, want)
    if got[0] == "ok":
        same(got[1], want[1])
    return got


def total(*parts):
    """A scalar function of every leaf of its arguments, weighted by position."""
    tot = 0.0
    for k, x in enumerate(tree.flatten(parts, share=False)[1]):
        tot = tot + np.sum(np.sin(x) * (k + 1))
    return tot


# -- the fast entry ------------------------------------------------------------------------


def test_fast_entry_refuses_one_float_object_at_two_leaves():
    """Flattening shares any leaf met twice (floats too), so the slow path and the
    interpreter see another structure; the fast entry checked identity for arrays only
    and ran (s, s) on a tape traced with two distinct floats."""
    _, tape = tg.trace(total, (1.5, 2.5), A)
    ct = tg.compile(tape, wait=True)
    assert "def entry(a0, a1)" in ct._source
    s = float(np.float64(3.25))  # one object at both places
    for t in (ct, tape):
        with pytest.raises(ValueError, match="same object"):
            tg.play(t, (s, s), A)
    agree(ct, tape, (s, float(s + 0.0) + 1.0), A)
    same(tg.play(ct, (0.5, 0.75), A), total((0.5, 0.75), A))


def test_same_object_twice_message_names_the_paths():
    _, tape = tg.trace(total, (A, B), C)
    with pytest.raises(ValueError, match=r"field paths \(0,\) and \(1,\)"):
        tg.play(tape, (A, A), C)


def test_structured_grad_returns_fresh_constants_and_numpy_scalars():
    """Yota gradients of structured arguments are dicts with tuple keys: the driver could
    not inline their template and returned folded constant gradients by reference (a
    caller scaling its gradient in place changed every later call) and kernel scalars as
    Python floats where the interpreter gives np.float64."""
    def f(p):
        return np.sum(p[0] * 3.0) + np.sum(np.sin(p[1]))

    _, g = tg.grad(f, (A, B))
    ct = tg.compile(g.tape, wait=True)
    v, (gp,) = tg.play(ct, (A, B))
    v0, (gp0,) = tg.play(g.tape, (A, B))
    assert type(v) is type(v0) is np.float64 and v == pytest.approx(v0, rel=1e-12)
    np.testing.assert_array_equal(gp[(0,)], 3.0)
    gp[(0,)] *= -1  # the caller owns its gradient
    np.testing.assert_array_equal(tg.play(ct, (A, B))[1][0][(0,)], 3.0)
    np.testing.assert_allclose(tg.play(ct, (A, B))[1][0][(1,)], np.cos(B), rtol=1e-12)


def test_interpreter_returns_copies_of_baked_constants():
    """A tape output that is a constant (or a view of one) was handed out by reference:
    writing into one result changed later results of play / tg.jit."""
    const = np.arange(6.0)

    def h(x):
        return x * 2, const.reshape(2, 3), {"k": const[1:3], (1, 2): np.full(2, 5.0)}

    _, tape = tg.trace(h, A)
    ct = tg.compile(tape, wait=True)
    for t in (tape, ct):
        for _ in range(2):
            r = tg.play(t, A)
            np.testing.assert_array_equal(r[1], np.arange(6.0).reshape(2, 3))
            np.testing.assert_array_equal(r[2]["k"], [1.0, 2.0])
            np.testing.assert_array_equal(r[2][(1, 2)], 5.0)
            r[1][...] = -1
            r[2]["k"][...] = -1
            r[2][(1, 2)][...] = -1
    np.testing.assert_array_equal(const, np.arange(6.0))


def test_play_a_float_traced_tape_inside_grad():
    """A tape traced on a Python float, replayed inside grad w.r.t. that float: the float
    is a 0-d Tracer there, which flattened as an "array" leaf: structure error."""
    def f(p, s):
        a, b = p
        return np.sum(np.tanh(a) * b) * s

    _, tape = tg.trace(f, (A, B), 1.5)
    ct = tg.compile(tape, wait=True)
    for t in (tape, ct):
        v, g = tg.grad(lambda p, s: tg.play(t, p, s) ** 2, (A, B), 1.5)
        v0, g0 = tg.grad(lambda p, s: f(p, s) ** 2, (A, B), 1.5)
        assert v == pytest.approx(v0, rel=1e-12)
        assert type(g[1]) is float and g[1] == pytest.approx(g0[1], rel=1e-12)
        np.testing.assert_allclose(g[0][(1,)], g0[0][(1,)], rtol=1e-12)
        gs = tg.grad(lambda s: tg.play(t, (A, B), s))(0.5)
        assert type(gs) is float and gs == pytest.approx(np.sum(np.tanh(A) * B), rel=1e-12)
    with pytest.raises(ValueError, match="structure"):  # an array where a float was traced
        tg.play(ct, (A, B), np.array(1.5))


def test_fast_entry_edge_leaves_agree_with_interpreter():
    class Sub(tuple):
        pass

    _, tape = tg.trace(total, (A, 0.5, np.array(2.0)), B)
    ct = tg.compile(tape, wait=True)
    assert "def entry(a0, a1)" in ct._source
    fort = np.repeat(A, 2)[::2]
    ro = A.copy()
    ro.flags.writeable = False
    cases = [
        ((A, 0.5, np.array(2.0)), B),
        ((A * 2, np.float64(0.25), np.array(-1.0)), B),  # np.float64 where a float was traced
        ((fort, 0.5, np.array(2.0)), ro),  # strided and read-only: copied, same numbers
        ((A, 0.5, A[0:1].reshape(())), B),  # a 0-d view of another leaf
        ((A, 0.5, np.array(2.0)), A),  # one array in two arguments
        ((A, 0.5, 2.0), B),  # float for a 0-d array
        ((A, np.array(0.5), np.array(2.0)), B),  # 0-d array for a float
        ((A, 0.5, np.array(2.0, np.float32)), B),
        ((A.astype(np.float32), 0.5, np.array(2.0)), B),
        ((np.arange(4), 0.5, np.array(2.0)), B),
        ((A, 0.5, np.array(2.0)), B > 0),
        ((A + 0j, 0.5, np.array(2.0)), B),
        ((A, 0.5 + 0j, np.array(2.0)), B),
        ([A, 0.5, np.array(2.0)], B),
        (Sub((A, 0.5, np.array(2.0))), B),
        (NT3(A, 0.5, np.array(2.0)), B),
        ((A, 0.5), B),
        ((A, 0.5, np.array(2.0), None), B),
        ((A, 0.5, (np.array(2.0),)), B),
        ((A, 0.5, np.array([2.0])), B),
    ]
    kinds = [agree(ct, tape, *args)[0] for args in cases]
    assert kinds[:5] == ["ok"] * 5 and kinds[5:] == ["ValueError"] * (len(cases) - 5)


_LEAVES = [lambda: R.standard_normal(3), lambda: float(R.standard_normal())]


def _random_structure(rng, leaves):
    """A random nesting of tuple/list/dict/namedtuple around `leaves` (consumed in order)."""
    if len(leaves) == 1 and rng.random() < 0.6:
        return leaves.pop(0)
    kind = rng.choice(["tuple", "list", "dict", "nt"])
    n = len(leaves)
    cut = rng.randint(1, n - 1) if n > 1 else 1
    parts = [leaves[:cut], leaves[cut:]] if n > 1 else [leaves[:]]
    del leaves[:]
    kids = [_random_structure(rng, p) for p in parts if p]
    if kind == "tuple":
        return tuple(kids)
    if kind == "list":
        return list(kids)
    if kind == "nt" and len(kids) == 2:
        return NT(*kids)
    keys = rng.choice([("W", "b"), (0, 7), ("z", 3)])
    return {keys[j]: k for j, k in enumerate(kids)}


def _mutations(rng, p):
    """Variants of structure p: equal ones and ones the slow path refuses."""
    paths, leaves, _ = tree.flatten(p, share=False)
    fresh = [np.array(x) * 1.5 if isinstance(x, np.ndarray) else x * 1.5 for x in leaves]
    yield tree.unflatten_like(p, fresh, share=False)
    arrays = [i for i, x in enumerate(leaves) if isinstance(x, np.ndarray)]
    if len(arrays) >= 2:  # one array at two leaves
        lv = list(fresh)
        lv[arrays[1]] = lv[arrays[0]]
        yield tree.unflatten_like(p, lv, share=False)
    floats = [i for i, x in enumerate(leaves) if isinstance(x, float)]
    if len(floats) >= 2:
        lv = list(fresh)
        lv[floats[1]] = lv[floats[0]]
        yield tree.unflatten_like(p, lv, share=False)
    for i in range(len(leaves)):  # each leaf of another kind, dtype or shape
        x = fresh[i]
        alt = [np.float32(x) if isinstance(x, float) else x.astype(np.float32),
               np.array(x) if isinstance(x, float) else x[:2].copy(),
               np.float64(x) if isinstance(x, float) else x.reshape(1, 3)]
        lv = list(fresh)
        lv[i] = alt[rng.randrange(3)]
        yield tree.unflatten_like(p, lv, share=False)

    def swap(obj):  # containers of another type
        if isinstance(obj, NT):
            return tuple(swap(v) for v in obj)
        if isinstance(obj, tuple):
            return [swap(v) for v in obj]
        if isinstance(obj, list):
            return tuple(swap(v) for v in obj)
        if isinstance(obj, dict):
            return dict(reversed([(k, swap(v)) for k, v in obj.items()]))
        return obj

    yield swap(p)


def test_random_structures_fast_entry_matches_interpreter():
    n = int(os.environ.get("TAPEGRAD_QA_SWEEP", "6"))
    rng = random.Random(1234)
    fast = 0
    for _ in range(n):
        kinds = [rng.randrange(2) for _ in range(3)]
        p = _random_structure(rng, [_LEAVES[k]() for k in kinds])
        _, g = tg.grad(total, p, C)
        for tape in (g.tape, tg.trace(total, p, C)[1]):
            ct = tg.compile(tape, wait=True)
            fast += "def entry(*args)" not in ct._source
            agree(ct, tape, p, C)
            for q in _mutations(rng, p):
                agree(ct, tape, q, C)
    assert fast > 0


# -- tree.flatten's shortcut ------------------------------------------------------------------


def _walked(x, share=True):
    """What the general walk gives for `x` (inside a one-element list: no shortcut)."""
    paths, leaves, t = tree.flatten([x], share)
    assert t[0] is list and len(t[1]) == 1
    return [p[1:] for p in paths], leaves, t[1][0][1]


@pytest.mark.parametrize("share", [True, False])
def test_flatten_shortcut_equals_the_walk(share):
    class Sub(np.ndarray):
        pass

    cases = [(A, B), [A, B, C], (A,), [A], (A, A), [A, B, A], (A, 1.5), (A, B.view(Sub)),
             NT(A, B), (A, np.float64(1.0)), (np.array(1.0), A), (A, [B])]
    for x in cases:
        got, want = tree.flatten(x, share), _walked(x, share)
        assert got[0] == want[0] and got[2] == want[2], x
        assert len(got[1]) == len(want[1]) and all(a is b for a, b in zip(got[1], want[1]))
    # the returned lists are the caller's to mutate
    paths, leaves, t = tree.flatten((A, B), share)
    paths.append("junk")
    leaves.clear()
    paths2, leaves2, t2 = tree.flatten((A, B), share)
    assert paths2 == [(0,), (1,)] and leaves2[0] is A and leaves2[1] is B and t2 == t


# -- core.filler ------------------------------------------------------------------------------


@dataclasses.dataclass
class DC:
    w: object
    tag: str = "t"


def test_filler_equals_fill_on_odd_templates():
    o = [np.arange(3.0), np.float64(2.5), np.array(1.5), np.float32(0.5), 2.0 + 1j]
    templates = [
        Slot(0),
        (Slot(0), (Slot(1), [Slot(2), {"a": Slot(0)}])),
        {(1, 2): Slot(0), 1.5: Slot(1), True: Slot(2), "s": None},
        {0: Slot(0), -1: [Slot(1)], "x": {"y": (Slot(2),)}},
        NT(Slot(0), NT(Slot(1), [Slot(2), None])),
        (Slot(1, "float"), Slot(2, "array0"), Slot(3, "array0"), Slot(4, "complex")),
        (None, 3, "s", [], (), {}, [Slot(0), 1]),
        _Obj(DC(np.zeros(3)), [Slot(0)]),
        [Slot(0), Slot(0)],
    ]
    for t in templates:
        fn = filler(t)
        a, b = fn(o), fill(t, o)
        same(a, b)
        if isinstance(a, (list, dict)):
            assert fn(o) is not a  # a fresh container each call


def test_jit_odd_outputs():
    x = np.linspace(0.1, 1.0, 3)
    outs = {
        "dict_nonstr": lambda x: {(1, 2): x * 2, 1.5: np.sum(x), True: x},
        "nested_nt": lambda x: NT(x * 2, NT(np.sum(x), [x, None])),
        "dataclass": lambda x: DC(x * 3),
        "statics": lambda x: (None, 3, "s", x * 1.0, [1, x]),
        "list": lambda x: [x, [x * 2, (np.sum(x),)]],
        "twice": lambda x: (x * 2,) * 2,
        "floats": lambda x: (1.5, 2.5, 1j, np.sum(x)),
        "empty": lambda x: ((), [], {}, x),
    }
    for name, fn in outs.items():
        jf = tg.jit(fn, compile=False)
        want = fn(x)
        for _ in range(3):
            got = jf(x)
            if isinstance(want, DC):
                assert isinstance(got, DC) and got.tag == "t"
                np.testing.assert_allclose(got.w, want.w, rtol=1e-12)
            else:
                same(got, want)
        assert jf.cache_info().hits == 2, name


def test_jit_value_and_grad_and_dynamic_grad():
    def f(p, x):
        return np.sum(np.tanh(x @ p["W"]) * p["s"])

    p = {"W": R.standard_normal((4, 2)), "s": 0.5}
    x = R.standard_normal((3, 4))
    v0, g0 = tg.value_and_grad(f)(p, x)
    jf = tg.jit(tg.value_and_grad(f), compile=False)
    for _ in range(2):
        v, g = jf(p, x)
        assert v == pytest.approx(v0, rel=1e-12)
        np.testing.assert_allclose(g["W"], g0["W"], rtol=1e-12)
        assert g["s"] == pytest.approx(g0["s"], rel=1e-12)
    for _ in range(2):
        v, g = tg.grad(f, p, x, dynamic=True)
        assert v == pytest.approx(v0, rel=1e-12)
        np.testing.assert_allclose(g[0][("W",)], g0["W"], rtol=1e-12)
        assert type(g[0][("s",)]) is float and g[0][("s",)] == pytest.approx(g0["s"], rel=1e-12)
        np.testing.assert_allclose(g[1], tg.grad(f, argnum=1)(p, x), rtol=1e-12)


# -- gradient kinds of 0-d arrays ---------------------------------------------------------------


def _f0(s):
    return np.sin(s) * s


def _df0(s):
    return np.cos(s) * s + np.sin(s)


@pytest.mark.parametrize("s", [np.array(0.7), np.array(0.7, np.float32), 0.7],
                         ids=["f64", "f32", "float"])
def test_gradient_kind_of_0d_argument_on_every_path(s):
    want_type = float if isinstance(s, float) else np.ndarray
    dtype = None if isinstance(s, float) else s.dtype
    rtol = 1e-6 if dtype == np.float32 else 1e-12

    def check(g):
        assert type(g) is want_type, type(g)
        if dtype is not None:
            assert g.shape == () and g.dtype == dtype
        np.testing.assert_allclose(g, _df0(float(s)), rtol=rtol)

    v, g = tg.grad(_f0, s)
    check(g[0])
    check(tg.play(g.tape, s)[1][0])
    check(tg.play(tg.compile(g.tape, wait=True), s)[1][0])
    check(tg.grad(_f0, s, compile=True)[1][0])
    for _ in range(2):
        check(tg.grad(_f0, s, dynamic=True)[1][0])
    check(tg.grad(_f0)(s))
    check(tg.value_and_grad(_f0)(s)[1])
    check(tg.grad(lambda p: _f0(p[0]), (s,))[1][0][(0,)])
    check(tg.grad(lambda p: _f0(p[0]))((s,))[0])
    check(tg.elementwise_grad(_f0)(s))  # was a NumPy scalar for a 0-d array
    check(tg.make_vjp(_f0)(s)[0](np.ones((), np.result_type(s))) if dtype is not None
          else tg.make_vjp(_f0)(s)[0](1.0))
    # second order: d/ds (cos s * s + sin s) = 2 cos s - s sin s
    gg = tg.grad(tg.grad(_f0))(s)
    assert type(gg) is want_type
    np.testing.assert_allclose(gg, 2 * np.cos(float(s)) - float(s) * np.sin(float(s)), rtol=rtol)
    for fn in (tg.jacobian(_f0), tg.hessian(_f0)):
        r = fn(s)
        assert isinstance(r, np.ndarray) and r.shape == ()
