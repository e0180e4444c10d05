"""Bad-input fuzz (issue 8): every public entry point either gives NumPy's answer or raises
a documented exception (ValueError, TypeError, TraceError, GuardError) -- never a wrong
number, never another exception, never a crash.

Hypothesis draws values (NaN, inf, huge, tiny included) and one mutation of one argument
leaf: wrong shape, wrong dtype (int, bool, float32, complex, float16), empty, 0-d,
strided, negative-stride, Fortran-order, read-only, big-endian, object arrays, Python
lists, None, Python scalars, and missing/extra/renamed struct fields. Targets: the
interpreter `tg.play(tape)`, the compiled `tg.play(ctape)` and `ctape.run` (kernels
compiled once, shared with tests/test_numba.py's cache), `tg.jit(f)` with and without
`compile=True`, and `tg.grad`. Outcome counts are printed in the terminal summary
(no `-s` needed) and recorded as the `fuzz_counts` property.
"""

import collections
import contextlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import tapegrad as tg
from tapegrad import tree

EXAMPLES = int(os.environ.get("TAPEGRAD_FUZZ_EXAMPLES", "100"))
DOCUMENTED = (ValueError, TypeError, tg.TraceError, tg.GuardError)
COUNTS = collections.Counter()  # (target, mutation, outcome) -> cases
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck),
                    phases=(Phase.explicit, Phase.generate))  # no shrinking: bounded time


@pytest.fixture(autouse=True, scope="module")
def report_counts(request):
    yield
    _report(request)


def _report(request):
    if not COUNTS:
        return
    by_target = collections.defaultdict(collections.Counter)
    for (target, _, outcome), n in COUNTS.items():
        by_target[target][outcome] += n
    lines = [f"fuzz: {sum(COUNTS.values())} cases"]
    for target, c in sorted(by_target.items()):
        lines.append(f"  {target:12s} {sum(c.values()):5d}: " +
                     ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    muts = collections.Counter()
    for (_, m, _), n in COUNTS.items():
        muts[m] += n
    lines.append("  mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(muts.items())))
    pm = request.config.pluginmanager
    tr, cap = pm.get_plugin("terminalreporter"), pm.get_plugin("capturemanager")
    if tr is not None:
        with cap.global_and_fixture_disabled() if cap else contextlib.nullcontext():
            tr.write_line("")
            for ln in lines:
                tr.write_line(ln)


# -- the functions under test ----------------------------------------------------------------


def f_pair(x, y):
    return np.sum(np.tanh(x) * y + np.maximum(x, y))


def f_struct(p, x):
    return np.sum(np.tanh(p["w"] * x + p["b"]) ** 2)


def f_loop(x, n):
    for _ in range(min(int(n), 4)):  # guarded on int(n); bounded for fuzzed n
        x = np.sin(x) * 1.5
    return np.sum(x * x)


def f_mat(a):
    return np.sum(np.exp(-a * a) * 0.5) + np.sum(a, axis=0) @ np.ones(a.shape[1])


CASES = {
    "pair": (f_pair, lambda: (np.linspace(0.1, 1.0, 6), np.linspace(-1.0, 2.0, 6))),
    "struct": (f_struct, lambda: ({"w": np.linspace(0.1, 1.0, 3), "b": np.array([0.5, -1.0, 2.0])},
                                  np.array([1.0, 2.0, 3.0]))),
    "loop": (f_loop, lambda: (np.linspace(0.1, 1.0, 4), np.array(2))),
    "mat": (f_mat, lambda: (np.arange(6.0).reshape(2, 3) / 7.0,)),
}


@pytest.fixture(scope="module")
def built():
    """Per case: (f, example args, tape, compiled tape, jit, jit(compile=True)), once."""
    out = {}
    for name, (f, make) in CASES.items():
        args = make()
        _, tape = tg.trace(f, *args)
        ct = tg.compile(tape, wait=True)
        jc = tg.jit(f, compile=True, maxsize=16)
        jc(*args)
        jc.wait()
        out[name] = (f, args, tape, ct, tg.jit(f, maxsize=16), jc)
    return out


# -- mutations -------------------------------------------------------------------------------

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
MUTATIONS = ["none", "values", "shape", "int64", "int32", "bool", "float32", "float16",
             "complex", "empty", "zero_d", "strided", "negative_stride", "fortran", "readonly",
             "big_endian", "object", "list", "None", "py_float", "py_int", "missing_field",
             "extra_field", "list_for_dict"]


def _mutate(x, kind, data):
    """One bad (or odd but valid) version of array leaf `x`."""
    if kind in ("none",):
        return x
    if kind == "values":  # same type, any floats (NaN, inf, subnormal, huge)
        vals = data.draw(st.lists(floats, min_size=x.size, max_size=x.size))
        return np.array(vals, dtype=np.float64).reshape(x.shape).astype(x.dtype)
    if kind == "shape":
        shape = data.draw(st.sampled_from([(), (1,), (0,), (x.size + 1,), (2, 3), (3, 2),
                                           (1,) + x.shape, x.shape[:-1] if x.ndim else (2,)]))
        return np.resize(x.astype(np.float64), shape) if shape != x.shape else np.ones(shape + (1,))
    if kind in ("int64", "int32", "bool", "float32", "float16", "complex"):
        dt = {"complex": np.complex128}.get(kind, kind)
        with np.errstate(all="ignore"):
            return (x * 3).astype(dt)
    if kind == "empty":
        return np.empty((0,) + x.shape[1:], x.dtype)
    if kind == "zero_d":
        return np.array(x.flat[0] if x.size else 0.0, x.dtype)
    if kind == "strided":
        big = np.repeat(x[..., None], 2, axis=-1)
        return big[..., 0] if x.ndim else x
    if kind == "negative_stride":
        return np.flip(np.flip(x).copy())
    if kind == "fortran":
        return np.asfortranarray(x) if x.ndim >= 2 else np.asfortranarray(x.T).T
    if kind == "readonly":
        y = x.copy()
        y.flags.writeable = False
        return y
    if kind == "big_endian":
        return x.astype(x.dtype.newbyteorder(">"))
    if kind == "object":
        return x.astype(object)
    if kind == "list":
        return x.tolist()
    if kind == "None":
        return None
    if kind == "py_float":
        return float(x.flat[0]) if x.size else 1.0
    if kind == "py_int":
        return 2
    raise AssertionError(kind)


def _mutate_args(args, kind, data):
    args = list(args)
    if kind in ("missing_field", "extra_field", "list_for_dict"):
        k = next((i for i, a in enumerate(args) if isinstance(a, dict)), None)
        if k is None:
            kind = "None"
        else:
            d = dict(args[k])
            if kind == "missing_field":
                d.pop(data.draw(st.sampled_from(sorted(d))))
            elif kind == "extra_field":
                d["zz"] = np.ones(3)
            else:
                d = list(d.values())
            args[k] = d
            return args
    paths, leaves, _ = tree.flatten(args)
    arr = [i for i, x in enumerate(leaves) if isinstance(x, np.ndarray)]
    i = data.draw(st.sampled_from(arr))
    new = _mutate(leaves[i], kind, data)
    if kind not in ("none", "values") and data.draw(st.booleans()):  # NaN/inf elsewhere too
        j = data.draw(st.sampled_from(arr))
        if j != i and leaves[j].dtype.kind == "f" and leaves[j].size:
            leaves[j] = leaves[j].copy()
            leaves[j].flat[0] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    leaves[i] = new
    return tree.unflatten_like(args, leaves)


# -- outcomes ---------------------------------------------------------------------------------


def _same(got, want):
    gp, gl, gt = tree.flatten(got)
    wp, wl, wt = tree.flatten(want)
    assert gp == wp and len(gl) == len(wl), (got, want)
    for g, w in zip(gl, wl):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, (g.shape, w.shape)
        assert g.dtype == w.dtype or (g.dtype.kind == w.dtype.kind == "f"), (g.dtype, w.dtype)
        if w.dtype.kind in "fc":
            tol = 1e-4 if w.dtype.itemsize <= 4 else 1e-9
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True)
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
            np.testing.assert_array_equal(np.isinf(g) & (g > 0), np.isinf(w) & (w > 0))
        else:
            np.testing.assert_array_equal(g, w)


def _outcome(target, kind, call, want):
    """Run `call`; -> outcome name. `want`: NumPy's answer, or the exception it raised.
    Allowed: NumPy's answer, a documented exception, or the exception `f` itself raises
    in plain NumPy (`a.shape[1]` on an int: AttributeError)."""
    try:
        with np.errstate(all="ignore"):
            got = call()
    except DOCUMENTED as e:
        out = f"raised {type(e).__name__}"
    except Exception as e:
        if isinstance(want, BaseException) and type(e) is type(want):  # f itself fails so
            COUNTS[(target, kind, f"raised {type(e).__name__} as NumPy")] += 1
            return "as NumPy"
        COUNTS[(target, kind, f"UNDOCUMENTED {type(e).__name__}")] += 1
        raise AssertionError(f"{target}/{kind}: undocumented {type(e).__name__}: {e}") from e
    else:
        if isinstance(want, BaseException):
            COUNTS[(target, kind, "WRONG")] += 1
            raise AssertionError(f"{target}/{kind}: NumPy raised {want!r}, got {got!r}")
        try:
            _same(got, want)
        except AssertionError:
            COUNTS[(target, kind, "WRONG")] += 1
            raise
        out = "same"
    COUNTS[(target, kind, out)] += 1
    return out


def _numpy(f, args):
    try:
        with np.errstate(all="ignore"):
            return f(*args)
    except Exception as e:  # noqa: BLE001  (NumPy's own verdict on a bad input)
        return e


@pytest.mark.parametrize("case", sorted(CASES))
@SETTINGS
@given(data=st.data(), kind=st.sampled_from(MUTATIONS))
def test_play_interpreted_and_compiled(built, case, data, kind):
    f, args, tape, ct, _, _ = built[case]
    bad = _mutate_args(args, kind, data)
    want = _numpy(f, bad)
    _outcome("play", kind, lambda: tg.play(tape, *bad), want)
    _outcome("play_ctape", kind, lambda: tg.play(ct, *bad), want)

    if kind not in ("missing_field", "extra_field", "list_for_dict"):
        _, leaves, _ = tree.flatten(list(bad))  # flat leaves, no structure check: run's own
        _outcome("ctape_run", kind, lambda: ct.run(leaves)[0], want)


@pytest.mark.parametrize("case", sorted(CASES))
@SETTINGS
@given(data=st.data(), kind=st.sampled_from(MUTATIONS))
def test_jit(built, case, data, kind):
    f, args, _, _, jf, jc = built[case]
    bad = _mutate_args(args, kind, data)
    want = _numpy(f, bad)
    _outcome("jit", kind, lambda: jf(*bad), want)
    _outcome("jit_compile", kind, lambda: jc(*bad), want)


@pytest.mark.parametrize("case", sorted(CASES))
@SETTINGS
@given(data=st.data(), kind=st.sampled_from(MUTATIONS))
def test_grad(built, case, data, kind):
    f = built[case][0]
    bad = _mutate_args(built[case][1], kind, data)
    want = _numpy(f, bad)

    def value():
        val, g = tg.grad(f, *bad)
        for i in range(len(bad)):
            g[i]  # every gradient computed (lazy reverse pass)
        return val

    out = _outcome("grad", kind, value, want)
    if out == "same" and kind in ("strided", "negative_stride", "fortran", "readonly", "values"):
        # a view or an odd buffer of the same values: the same gradients as a fresh copy
        _, leaves, _ = tree.flatten(bad)
        fresh = tree.unflatten_like(bad, [np.array(x, order="C", copy=True) for x in leaves])
        with np.errstate(all="ignore"):
            _, g1 = tg.grad(f, *bad)
            _, g2 = tg.grad(f, *fresh)
            for i in range(len(bad)):
                _outcome("grad_layout", kind, lambda: g1[i], g2[i])


def test_zz_counts_recorded(record_property):
    """Runs last (file order): the counts go into the JUnit XML as `fuzz_counts`."""
    record_property("fuzz_counts", {f"{t}|{m}|{o}": n for (t, m, o), n in COUNTS.items()})
    assert not any(o == "WRONG" or o.startswith("UNDOCUMENTED") for _, _, o in COUNTS)
