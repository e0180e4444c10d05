"""Disk cache integrity (issue 8): a private 0700 directory, atomic writes, corrupt files
detected by hash and rebuilt, unsafe directories refused, concurrent processes, override
and clearing.

In-process tests drive `diskcache.kernel_files` with tiny hand-written kernels under
unique names (compiled kernels are memoised per process, so `tg.compile` would not touch
a new directory); the subprocess tests go through `tg.compile` end to end.
"""

import os
import stat
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.backends import diskcache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = ("import numba\n\n\n@numba.njit(cache=True)\n"
       "def kernel(x):\n    return x * 2.0 + {k}\n")


@pytest.fixture
def cdir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("TAPEGRAD_CACHE_DIR", str(d))
    return d


def build(k=1.0, name=None):
    """Import and compile a one-line kernel through the cache. -> (name, cache hits, f(3))."""
    import numba

    name = name or f"tgk_t{uuid.uuid4().hex[:12]}"
    sys.modules.pop(name, None)
    with diskcache.kernel_files(name, SRC.format(k=k)) as mod:
        mod.kernel.compile((numba.float64,))
    hits = sum(mod.kernel.stats.cache_hits.values())
    return name, hits, mod.kernel(3.0)


def numba_files(d, name):
    return sorted((d / "__pycache__").glob(name + ".*"))


def test_directory_created_private(cdir):
    d = diskcache.cache_dir()
    assert d == str(cdir) and stat.S_IMODE(os.stat(d).st_mode) == 0o700
    name, hits, y = build()
    assert (hits, y) == (0, 7.0)
    assert stat.S_IMODE(os.stat(cdir / "__pycache__").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cdir / (name + ".py")).st_mode) == 0o600
    assert len(numba_files(cdir, name)) == 2 and (cdir / (name + ".sha256")).exists()
    assert not [e for e in os.listdir(cdir) if e.startswith(".tmp_")]


def test_second_load_hits_and_truncated_nbc_is_rebuilt(cdir):
    name, hits, _ = build()
    assert hits == 0
    assert build(name=name)[1] == 1  # from disk, manifest verified
    nbc = [p for p in numba_files(cdir, name) if p.suffix == ".nbc"][0]
    nbc.write_bytes(nbc.read_bytes()[:100])  # truncated (disk full, killed writer)
    before = diskcache.STATS["rebuilt"]
    _, hits, y = build(name=name)
    assert (hits, y) == (0, 7.0) and diskcache.STATS["rebuilt"] == before + 1
    assert build(name=name)[1] == 1  # the rebuilt files load again


def test_flipped_bytes_and_unlisted_files_are_rebuilt(cdir):
    name, _, _ = build(k=5.0)
    nbc = [p for p in numba_files(cdir, name) if p.suffix == ".nbc"][0]
    data = bytearray(nbc.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed: only the hash sees it
    nbc.write_bytes(bytes(data))
    before = diskcache.STATS["rebuilt"]
    assert build(k=5.0, name=name)[1:] == (0, 11.0)
    assert diskcache.STATS["rebuilt"] == before + 1
    (cdir / (name + ".sha256")).unlink()  # files nobody vouches for are not loaded
    assert build(k=5.0, name=name)[1] == 0
    assert build(k=5.0, name=name)[1] == 1


def test_changed_or_truncated_source_is_rewritten(cdir):
    name, _, _ = build(k=2.0)
    py = cdir / (name + ".py")
    py.write_text(py.read_text()[:30])
    assert build(k=2.0, name=name)[2] == 8.0
    assert py.read_text() == SRC.format(k=2.0)


def test_write_is_atomic(cdir, monkeypatch):
    target = cdir / "tgk_atomic.py"
    diskcache.cache_dir()
    target.write_text("old\n")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        diskcache._write_atomic(str(target), b"new contents\n")
    assert target.read_text() == "old\n"  # readers never see half a file
    assert not [e for e in os.listdir(cdir) if e.startswith(".tmp_")]


@pytest.mark.parametrize("where", ["dir", "pycache"])
def test_directory_writable_by_others_is_refused(tmp_path, monkeypatch, where):
    d = tmp_path / "shared"
    (d / "__pycache__").mkdir(parents=True)
    os.chmod(d / "__pycache__", 0o700)
    os.chmod(d if where == "dir" else d / "__pycache__", 0o777)
    (d / "tgk_planted.py").write_text("import os\nkernel = None\n")
    monkeypatch.setenv("TAPEGRAD_CACHE_DIR", str(d))
    with pytest.warns(RuntimeWarning, match="writable by group or others"):
        private = diskcache.cache_dir()
    assert private != str(d) and stat.S_IMODE(os.stat(private).st_mode) == 0o700
    assert diskcache.cache_dir() == private  # warned once, same private dir after
    name, hits, y = build()
    assert (hits, y) == (0, 7.0)
    assert os.path.exists(os.path.join(private, name + ".py"))
    assert sorted(os.listdir(d)) == ["__pycache__", "tgk_planted.py"]
    assert os.listdir(d / "__pycache__") == []


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs chown (root)")
def test_directory_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    d = tmp_path / "theirs"
    d.mkdir(mode=0o700)
    os.chown(d, 65534, 65534)
    monkeypatch.setenv("TAPEGRAD_CACHE_DIR", str(d))
    with pytest.warns(RuntimeWarning, match="owned by uid 65534"):
        assert diskcache.cache_dir() != str(d)


def test_override_and_clear(cdir):
    info = tg.cache_info()
    assert info["dir"] == str(cdir)
    name, _, _ = build()
    assert name + ".py" in diskcache.files()
    n = tg.cache_clear()
    assert n == 4  # source, manifest, Numba's index and data file
    assert os.listdir(cdir) == []
    assert build(name=name)[1:] == (0, 7.0)  # rebuilt from nothing


# -- processes -----------------------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np, tapegrad as tg
    def f(x):
        return np.sum(np.cos(x) * x + 0.25)
    x = np.linspace(0.0, 1.0, 4)
    _, tape = tg.trace(f, x)
    while time.time() < float(sys.argv[1]):  # both processes compile at the same moment
        time.sleep(0.005)
    ct = tg.compile(tape, wait=True)
    info = tg.cache_info()
    print(repr(float(tg.play(ct, x))), info["compiled"], info["loaded"], info["failed"])
""")


def run_procs(cache, n, delay):
    env = dict(os.environ, TAPEGRAD_CACHE_DIR=str(cache))
    start = time.time() + delay
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(start)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    outs = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for out, err, rc in outs:
        assert rc == 0, err
    return [out.split() for out, _, _ in outs], time.time() - start


def test_two_processes_compile_the_same_tape_at_once(tmp_path):
    x = np.linspace(0.0, 1.0, 4)
    want = float(np.sum(np.cos(x) * x + 0.25))
    res, secs = run_procs(tmp_path / "c", 2, delay=4.0)
    print(f"two processes at once: {secs:.1f} s after the common start; "
          f"(value, compiled, loaded, failed) = {res}")
    for v, compiled, loaded, failed in res:
        assert float(v) == pytest.approx(want, rel=1e-14) and failed == "0"
        assert int(compiled) + int(loaded) == 1
    # under the per-kernel lock one compiles, the other waits and loads its files
    assert sorted(int(r[1]) for r in res) == [0, 1]
    res2, _ = run_procs(tmp_path / "c", 1, delay=0.0)
    assert res2[0][1:] == ["0", "1", "0"]  # a later process loads, nothing was corrupted
