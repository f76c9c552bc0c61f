"""A crafted-state fuzzer of NGSolve files: no edited file crashes, hangs or surprises the loader.

A real file (curved and periodic meshes, spaces of several kinds, real and complex GridFunctions,
expression trees of every structured kind, Parameters, BitArrays, Regions, vectors and matrices) is read as a
graph; each case edits one value of one node's state (a number, a string, a list, an array's values, dtype or shape, a
reference, a missing key) with a seeded random choice, and the graph is written again with
ngser's own writer, so every checksum matches and the NGSolve serializers themselves are what is
tested. All cases are loaded without trust in child processes; each must load or end in an
:class:`~ngser.NgserError` other than :class:`~ngser.SerializerError` (which wraps a Python
exception a serializer let through: ngser's NGSolve serializers check their states and raise
``StateError``). A child that dies (SIGSEGV, SIGABRT), hangs or raises anything else names the
case, and the test lists them all.

``NGSER_FUZZ_CASES`` sets the number of cases (default 300, a few seconds); ``NGSER_FUZZ_SEED``
the seed.
"""

from __future__ import annotations

import copy
import os
import random
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ngsolve
import numpy as np
from ngsolve import CF, IfPos, InnerProduct, Parameter, cos, exp, grad, sin, sqrt, x, y

import ngser
from conftest import ball_in_box_mesh, disk_mesh, periodic_mesh
from ngser.backends import get_backend
from ngser.graph import ArrayNode, Graph, ObjectNode, Ref

CASES = int(os.environ.get("NGSER_FUZZ_CASES", "300"))
SEED = int(os.environ.get("NGSER_FUZZ_SEED", "20261203"))
#: Seconds one load may take in the child before it counts as a hang.
HANG_SECONDS = 30

HOSTILE: list[Any] = [
    0, 1, -1, -5, 2, 3, 7, 2**31 - 1, 2**31, 2**32, 2**63 - 1, -(2**63), 10**6, 10**9, 10**30,
    0.5, -0.0, 1e308, float("nan"), float("inf"), -float("inf"),
    True, False, None, "", "x", "VOL", "BND", "default", "H1", "sin", "+", "__import__", "a" * 5000,
    [], [0], [1, 2, 3], [None], {}, {"a": 1}, b"", b"\x00" * 16, 1j,
]  # fmt: skip


def _objects() -> Any:
    disk = disk_mesh(order=3)
    ball = ball_in_box_mesh()
    periodic = periodic_mesh()
    h1 = ngsolve.H1(disk, order=3, dirichlet="circle")
    u = ngsolve.GridFunction(h1, name="u")
    u.Set(x * y + sin(x))
    vh1 = ngsolve.VectorH1(ball, order=2, dirichlet="left")
    v = ngsolve.GridFunction(vh1, name="v")
    v.Set(CF((x, y * y, 1)))
    hc = ngsolve.HCurl(ball, order=1, complex=True)
    c = ngsolve.GridFunction(hc, name="c")
    c.Set(CF((1j * x, y, 0)))
    per = ngsolve.Periodic(ngsolve.H1(periodic, order=2, dirichlet="bottom"))
    p = ngsolve.GridFunction(per, name="p")
    p.Set(sin(2 * np.pi * x) * y)
    product = ngsolve.H1(disk, order=2) * ngsolve.L2(disk, order=1)
    w = ngsolve.GridFunction(product, name="w")
    w.components[0].Set(x)
    k = Parameter(2.5)
    trees = [
        x * u + sin(3 * y) - k * grad(u)[0],
        IfPos(x - 0.2, u**2, exp(y)) + sqrt(x * x + 1) + cos(u),
        InnerProduct(CF((x, y)), grad(u)) + CF((x, y, 1, 2), dims=(2, 2))[1, 0],
        disk.MaterialCF({"disk": 3.5}) * u + disk.BoundaryCF({"circle": x}, default=0),
        (x * u + y).Compile(),
        InnerProduct(v, v) + grad(v)[0, 1],
    ]
    sets = [per.FreeDofs(), disk.Materials("disk"), ball.Boundaries("sphere|left")]
    trial, test = h1.TnT()
    form = ngsolve.BilinearForm(h1)
    form += grad(trial) * grad(test) * ngsolve.dx + trial * test * ngsolve.dx
    form.Assemble()
    matrices = [form.mat, ngsolve.Projector(h1.FreeDofs(), True) @ form.mat.T + ngsolve.IdentityMatrix(h1.ndof)]
    mv = ngsolve.MultiVector(c.vec, 2)
    vectors = [u.vec, c.vec, ngsolve.la.BaseVector(np.arange(5.0)), mv, ngsolve.BlockVector([v.vec, u.vec])]
    return {
        "meshes": [disk, ball, periodic],
        "gfs": [u, v, c, p, w],
        "trees": trees,
        "k": k,
        "sets": sets,
        "vectors": vectors,
        "matrices": matrices,
    }


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) inside a state, containers included."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))


def _replace(state: Any, path: tuple[Any, ...], new: Any, delete: bool = False) -> Any:
    if not path:
        return new
    parent = state
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return state


def _array_edit(rng: random.Random, array: np.ndarray) -> np.ndarray:
    a = np.array(array)
    choice = rng.randrange(9)
    integer = a.dtype.kind in "iub"
    if choice == 0 and a.size:
        flat = a.reshape(-1).astype(np.int64 if integer else a.dtype)
        flat[rng.randrange(flat.size)] = rng.choice([10**6, -5, 2**31 - 1, 0, -1]) if integer else np.nan
        return flat.reshape(a.shape).astype(a.dtype)  # wraps around in narrow integer types
    if choice == 1:
        return (a.astype(np.int64) + 1000).astype(a.dtype) if integer else a + 1e300
    if choice == 2:
        return a[: rng.randrange(max(len(a), 1))]
    if choice == 3:
        return np.concatenate([a, a]) if a.ndim else a
    if choice == 4:
        return a.reshape(-1)
    if choice == 5:
        with warnings.catch_warnings():  # complex to real drops the imaginary part: as intended
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            return a.astype(rng.choice([np.float32, np.int8, np.complex128, np.uint64, np.bool_]))
    if choice == 6:
        return np.zeros((0, *a.shape[1:]), dtype=a.dtype)
    if choice == 7 and a.ndim == 2:
        return np.zeros((len(a), rng.choice([1, 7, 20])), dtype=a.dtype)
    return np.full(a.shape, rng.choice([-1, 0, 2**20]), dtype=np.int64).astype(a.dtype) if integer else -a


def _mutate(rng: random.Random, base: Graph) -> tuple[Graph, str]:
    """A copy of ``base`` with one edit, and what the edit was."""
    graph = copy.deepcopy(base)
    nodes = list(graph.nodes)
    ids = [n.id for n in nodes] + [a.id for a in graph.arrays]
    index = rng.randrange(len(nodes))
    node = nodes[index]
    leaves = list(_leaves(node.state))
    path, value = rng.choice(leaves)
    state = node.state
    if isinstance(value, Ref) and any(a.id == value.id for a in graph.arrays) and rng.random() < 0.7:
        position = next(i for i, a in enumerate(graph.arrays) if a.id == value.id)
        old = graph.arrays[position]
        new = _array_edit(rng, old.load())
        graph.arrays[position] = ArrayNode(old.id, new, old.label)
        what = f"array {new.dtype}{new.shape}"
    elif rng.random() < 0.15 and path:
        state = _replace(state, path, None, delete=True)
        what = "deleted"
    elif rng.random() < 0.2:
        state = _replace(state, path, ref := Ref(rng.choice(ids)))
        what = repr(ref)
    else:
        state = _replace(state, path, new_value := copy.deepcopy(rng.choice(HOSTILE)))
        what = repr(new_value)[:40]
    nodes[index] = ObjectNode(node.id, node.name, node.version, state)
    graph.nodes[:] = nodes
    graph._flat = None
    return graph, f"{node.name} #{node.id} {'/'.join(map(str, path))} = {what}"


CHILD = """
import resource, signal, sys, warnings
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
warnings.simplefilter("ignore")
import ngser

def hang(*_):
    raise TimeoutError("hang")

signal.signal(signal.SIGALRM, hang)
for path in sys.argv[2:]:
    print("START", path, flush=True)
    signal.alarm(int(sys.argv[1]))
    try:
        ngser.load(path)
    except ngser.SerializerError as exc:  # a Python exception let through by a serializer
        verdict = "LEAKED " + " ".join(str(exc).split())[-300:]
    except ngser.NgserError as exc:
        verdict = "NGSER " + type(exc).__name__
    except BaseException as exc:
        verdict = "OTHER " + type(exc).__name__ + ": " + " ".join(str(exc).split())[:300]
    else:
        verdict = "LOADED"
    signal.alarm(0)
    print("DONE", path, verdict, flush=True)
"""


def _run(paths: list[str]) -> dict[str, str]:
    """Verdicts of every path; a child that dies is restarted after the path it died on."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    verdicts: dict[str, str] = {}
    todo = list(paths)
    while todo:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(HANG_SECONDS), *todo], capture_output=True, text=True, env=env,
            timeout=HANG_SECONDS * len(todo) + 120,
        )  # fmt: skip
        started = None
        for line in out.stdout.splitlines():
            kind, _, rest = line.partition(" ")
            path, _, verdict = rest.partition(" ")
            if kind == "START":
                started = path
            elif kind == "DONE":
                verdicts[path] = verdict
                started = None
        if started is not None:  # the child died in this case
            verdicts[started] = f"DIED with {out.returncode}: {out.stderr.strip()[-300:]}"
        elif out.returncode != 0:
            raise AssertionError(f"the child failed outside any case: {out.stderr[-1500:]}")
        todo = [p for p in todo if p not in verdicts]
    return verdicts


def test_crafted_states_of_an_ngsolve_file_load_or_end_in_ngser_errors(tmp_path: Path) -> None:
    path = tmp_path / "base.msgpack"
    ngser.save(_objects(), path)
    base = ngser.read_graph(path)
    base.nodes  # noqa: B018  # the node table as a list
    rng = random.Random(SEED)
    writer = get_backend("msgpack")
    cases: dict[str, str] = {}
    for i in range(CASES):
        case = tmp_path / f"case{i:05d}.msgpack"
        graph, what = _mutate(rng, base)
        try:
            writer.write_path(graph, case)
        except Exception:  # the writer refuses values it cannot store (10**30)
            continue
        cases[str(case)] = f"case {i}: {what}"
    verdicts = _run(list(cases))
    bad = {cases[p]: v for p, v in verdicts.items() if not (v == "LOADED" or v.startswith("NGSER"))}
    loaded = sum(v == "LOADED" for v in verdicts.values())
    assert not bad, f"{len(bad)} of {len(cases)} crafted files (seed {SEED}): {bad}"
    assert len(verdicts) == len(cases) and loaded < len(cases)  # the edits reach the checks
