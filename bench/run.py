"""ngser benchmarks against what a user would otherwise use (``make bench``).

    python bench/run.py            # everything (the NGSolve case builds a 460k-tet mesh: ~1 min)
    python bench/run.py --quick    # smaller sizes, for a smoke test
    python bench/run.py arrays small

Sections: ``import`` (``import ngser`` vs ``import numpy``), ``arrays`` (200 MB of arrays vs
pickle protocol 5 and np.save), ``hdf5`` (the same vs raw h5py datasets, and file size vs raw
bytes), ``small`` (100,000 small registered objects with 1,000 shared parents vs C pickle of
equivalent plain classes), ``ngsolve`` (mesh + order-3 H1 GridFunction vs NGSolve's own pickle),
``owners`` (8,000 objects with a 4 KiB array each, every format), ``memory`` (peak memory of a
save and a load: 2 GB of arrays, an NGSolve case). Figures go into docs/performance.md by hand,
with the command that produced them.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import ngser
from checkpoint_cases import bench_checkpoint
from common import Row, report, settle_io, size, timed
from memory import bench_memory
from ngser.backends import available
from startup import bench_import

EXT = {"pickle": ".pkl", "msgpack": ".msgpack", "hdf5": ".h5"}


def save_load(obj: object, path: Path) -> None:
    ngser.save(obj, path)
    ngser.load(path)


def bench_arrays(tmp: Path, quick: bool) -> None:
    total = (20 if quick else 200) * 2**20
    arrays = {f"a{i}": np.random.default_rng(i).random(total // 8 // 10) for i in range(10)}

    def pickle_baseline() -> None:
        with open(tmp / "base.pkl", "wb") as f:
            pickle.dump(arrays, f, protocol=5)
        with open(tmp / "base.pkl", "rb") as f:
            pickle.load(f)

    def npsave_baseline() -> None:
        for name, a in arrays.items():
            np.save(tmp / f"{name}.npy", a)
        for name in arrays:
            np.load(tmp / f"{name}.npy")

    paths = {fmt: tmp / f"arrays{EXT[fmt]}" for fmt in available()}
    times = timed(
        {
            "pickle": pickle_baseline,
            "np.save": npsave_baseline,
            **{f"ngser {fmt}": (lambda p=path: save_load(arrays, p)) for fmt, path in paths.items()},
        },
        settle=settle_io,
    )
    rows: list[Row] = [times.row("np.save + np.load (10 files)", "np.save", "pickle", "vs pickle")]
    for fmt, path in paths.items():
        note = f"{size(path) / total:.4f} x raw bytes"
        rows.append(times.row(f"ngser {fmt} save+load", f"ngser {fmt}", "pickle", note))
    report(f"{total / 2**20:.0f} MB of float64 arrays, save+load vs pickle protocol 5 to a file", rows, 1.25)


def bench_hdf5(tmp: Path, quick: bool) -> None:
    if "hdf5" not in available():
        print("\n## hdf5: backend not available")
        return
    import h5py

    total = (20 if quick else 200) * 2**20
    arrays = {f"a{i}": np.random.default_rng(i).random(total // 8 // 10) for i in range(10)}

    def raw() -> None:
        with h5py.File(tmp / "raw.h5", "w") as f:
            for name, a in arrays.items():
                f.create_dataset(name, data=a)
        with h5py.File(tmp / "raw.h5", "r") as f:  # keeps what it reads, as a load does
            loaded = {}
            for name in arrays:
                loaded[name] = out = np.empty(f[name].shape, f[name].dtype)
                f[name].read_direct(out)

    path = tmp / "arrays.h5"
    times = timed({"raw": raw, "ngser": lambda: save_load(arrays, path)}, repeat=15, settle=settle_io)
    note = f"file {size(path) / total:.4f} x raw bytes (raw h5py {size(tmp / 'raw.h5') / total:.4f})"
    rows: list[Row] = [times.row("ngser hdf5 save+load", "ngser", "raw", note)]
    report(f"{total / 2**20:.0f} MB of arrays vs raw contiguous h5py datasets", rows, 1.25)


class PlainParent:
    def __init__(self, name: str, tag: int) -> None:
        self.name, self.tag = name, tag


class PlainChild:
    def __init__(self, parent: object, value: float, label: str) -> None:
        self.parent, self.value, self.label = parent, value, label


@ngser.register(name="bench.Parent")
class Parent(PlainParent):
    pass


@ngser.register(name="bench.Child")
class Child(PlainChild):
    pass


def bench_small(tmp: Path, quick: bool) -> None:
    n = 10_000 if quick else 100_000

    def make(parent_cls: type, child_cls: type) -> list[object]:
        parents = [parent_cls(f"p{i}", i) for i in range(1000)]
        return [child_cls(parents[i % 1000], float(i), f"c{i}") for i in range(n)]

    plain, registered = make(PlainParent, PlainChild), make(Parent, Child)
    # Steady state first: on Python 3.11+ an instance's __dict__ becomes a real object the
    # first time any serializer reads it, which changes how often the collector runs for
    # everyone in this process; make them all now so every case sees the same heap.
    for obj in (*plain, *registered, *{id(o.parent): o.parent for o in plain + registered}.values()):
        vars(obj)
    data = pickle.dumps(plain, protocol=5)
    blobs = {fmt: ngser.dumps(registered, format=fmt) for fmt in available()}

    def without_gc() -> None:
        gc.disable()
        try:
            pickle.loads(pickle.dumps(plain, protocol=5))
        finally:
            gc.enable()

    cases: dict[str, Callable[[], object]] = {
        "C pickle": lambda: pickle.loads(pickle.dumps(plain, protocol=5)),
        "C pickle dumps": lambda: pickle.dumps(plain, protocol=5),
        "C pickle loads": lambda: pickle.loads(data),
        "C pickle, gc off": without_gc,
    }
    for fmt, blob in blobs.items():
        cases[fmt] = lambda f=fmt: ngser.loads(ngser.dumps(registered, format=f))
        cases[f"{fmt} dumps"] = lambda f=fmt: ngser.dumps(registered, format=f)
        cases[f"{fmt} loads"] = lambda b=blob: ngser.loads(b)
    times = timed(cases)
    base_dumps, base_loads = times.best("C pickle dumps"), times.best("C pickle loads")
    rows: list[Row] = []
    for fmt, blob in blobs.items():
        d, ld = times.best(f"{fmt} dumps"), times.best(f"{fmt} loads")
        note = f"dumps {d * 1e3:.0f} ms, loads {ld * 1e3:.0f} ms, {len(blob) / 1e6:.1f} MB"
        rows.append(times.row(f"ngser {fmt} dumps+loads", fmt, "C pickle", note))
    print(
        f"\n(C pickle, garbage collector on: dumps {base_dumps * 1e3:.0f} ms, loads {base_loads * 1e3:.0f} ms, "
        f"{len(data) / 1e6:.1f} MB; with the collector off: {times.best('C pickle, gc off') * 1e3:.0f} ms)"
    )
    report(f"{n:,} small registered objects sharing 1,000 parents vs C pickle of plain classes", rows, 1.0)
    off = [times.row(f"ngser {fmt} dumps+loads", fmt, "C pickle, gc off") for fmt in blobs]
    report("the same vs C pickle with the garbage collector off (ngser pauses it; no target)", off)
    if not quick:
        bench_small_scaling()


def bench_small_scaling() -> None:
    """Cost per object of msgpack dumps + loads from 10^4 to 10^6 objects (1,000 shared parents)."""
    print("\ncost per object, msgpack dumps + loads (best of 5; target: constant within 20%)")
    per: dict[int, float] = {}
    for count in (10_000, 100_000, 1_000_000):
        parents = [Parent(f"p{i}", i) for i in range(1000)]
        objs = [Child(parents[i % 1000], float(i), f"c{i}") for i in range(count)]
        for obj in (*objs, *parents):
            vars(obj)
        plain_parents = [PlainParent(f"p{i}", i) for i in range(1000)]
        plain = [PlainChild(plain_parents[i % 1000], float(i), f"c{i}") for i in range(count)]
        for obj in (*plain, *plain_parents):
            vars(obj)
        cases: dict[str, Callable[[], object]] = {
            "msgpack": lambda o=objs: ngser.loads(ngser.dumps(o, format="msgpack")),
            "C pickle": lambda o=plain: pickle.loads(pickle.dumps(o, protocol=5)),
        }
        times = timed(cases, repeat=5)
        per[count] = times.best("msgpack") / count
        base = times.best("C pickle") / count
        print(f"  {count:>9,} objects: {per[count] * 1e9:6.0f} ns per object (C pickle {base * 1e9:.0f} ns)")
        del objs, parents, plain, plain_parents
    print(f"  largest / smallest: {max(per.values()) / min(per.values()):.2f}")


@ngser.register(name="bench.Holder")
class Holder:
    def __init__(self, values: np.ndarray) -> None:
        self.values = values


def bench_owners(tmp: Path, quick: bool) -> None:
    """Many objects with an array each: HDF5 names each dataset after its owner. Finding the
    owners once took a search of earlier states per array (quadratic: 52 s for 8,000 objects
    against 0.5 s as msgpack); the encoder now records them and files read back are walked once."""
    n = 2_000 if quick else 8_000
    holders = [Holder(np.full(512, float(i))) for i in range(n)]  # 4 KiB each
    paths = {fmt: tmp / f"owners{EXT[fmt]}" for fmt in available()}
    cases: dict[str, Callable[[], object]] = {
        fmt: (lambda p=path: save_load(holders, p)) for fmt, path in paths.items()
    }
    if "hdf5" in paths and "msgpack" in paths:
        cases["convert msgpack -> hdf5"] = lambda: ngser.convert(paths["msgpack"], tmp / "converted.h5")
    times = timed(cases, repeat=5, settle=settle_io)
    rows: list[Row] = [times.row(f"ngser {fmt} save+load", fmt, "msgpack") for fmt in paths]
    if "convert msgpack -> hdf5" in cases:
        rows.append(times.row("convert msgpack -> hdf5", "convert msgpack -> hdf5", "msgpack"))
    report(f"{n:,} objects holding a 4 KiB array each, vs ngser msgpack (no target)", rows)


def bench_ngsolve(tmp: Path, quick: bool) -> None:
    """A mesh with an order-3 H1 GridFunction, save + load, against NGSolve's own pickle, at sizes
    from about 8k to 460k tets."""
    try:
        from netgen.csg import unit_cube
        from ngsolve import H1, GridFunction, Mesh, x, y, z
    except ImportError:
        print("\n## ngsolve: not installed")
        return
    # the 460k mesh refined once (3.7M tets) is left out until its node order is fast: one save and
    # load takes minutes (docs/performance.md); add (0.0215, 1) to measure it
    sizes: list[tuple[float, int]] = [(0.1, 0)] if quick else [(0.085, 0), (0.044, 0), (0.0215, 0)]
    rows: list[Row]
    for maxh, refinements in sizes:
        ngmesh = unit_cube.GenerateMesh(maxh=maxh)
        for _ in range(refinements):
            ngmesh.Refine()
        mesh = Mesh(ngmesh)
        gfu = GridFunction(H1(mesh, order=3))
        gfu.Set(x * y * z)
        objs = [mesh, gfu]

        def native(objs: list[object] = objs) -> None:
            with open(tmp / "native.pkl", "wb") as f:
                pickle.dump(objs, f, protocol=5)
            with open(tmp / "native.pkl", "rb") as f:
                pickle.load(f)

        paths = {fmt: tmp / f"ngsolve{EXT[fmt]}" for fmt in available()}
        cases: dict[str, Callable[[], object]] = {"native": native}
        cases.update({fmt: (lambda p=path, o=objs: save_load(o, p)) for fmt, path in paths.items()})
        times = timed(cases, repeat=2 if mesh.ne > 1_000_000 else 5, settle=settle_io)
        rows = []
        for fmt, path in paths.items():
            note = f"{size(path) / 1e6:.1f} MB (native {size(tmp / 'native.pkl') / 1e6:.1f} MB)"
            rows.append(times.row(f"{mesh.ne:,} tets, {gfu.space.ndof:,} dofs: {fmt}", fmt, "native", note))
        report("NGSolve mesh + order-3 H1 GridFunction, save + load, vs NGSolve's own pickle", rows, 1.05)
        del objs, mesh, gfu, ngmesh, cases
        gc.collect()


def bench_curved(tmp: Path, quick: bool) -> None:
    """A curved mesh: ngser stores its curved element map beside the arrays (so that it comes back
    curved without its geometry); a trusted load curves it from the geometry, an untrusted one by
    the stored map."""
    try:
        from netgen.occ import OCCGeometry, Pnt, Sphere
        from ngsolve import Mesh
    except ImportError:
        print("\n## curved: NGSolve not installed")
        return
    import warnings

    mesh = Mesh(OCCGeometry(Sphere(Pnt(0, 0, 0), 1)).GenerateMesh(maxh=0.12 if quick else 0.06))
    mesh.Curve(2)

    def native() -> None:
        with open(tmp / "curved.pkl", "wb") as f:
            pickle.dump(mesh, f, protocol=5)
        with open(tmp / "curved.pkl", "rb") as f:
            pickle.load(f)

    path = tmp / "curved.msgpack"

    def ngser_case(trusted: bool) -> None:
        ngser.save(mesh, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # untrusted: the geometry is left out, with a warning
            ngser.load(path, trusted=trusted)

    cases: dict[str, Callable[[], object]] = {
        "native": native,
        "trusted": lambda: ngser_case(True),
        "untrusted": lambda: ngser_case(False),
    }
    times = timed(cases, repeat=3, settle=settle_io)
    note = f"file {size(path) / 1e6:.1f} MB (native pickle {size(tmp / 'curved.pkl') / 1e6:.1f} MB)"
    rows = [
        times.row("ngser msgpack save+load, trusted (curved from the geometry)", "trusted", "native", note),
        times.row("ngser msgpack save+load, untrusted (curved by the stored map)", "untrusted", "native"),
    ]
    report(f"curved mesh of order 2 ({mesh.ne:,} tets) vs native pickle (no target)", rows)


def bench_refined(tmp: Path, quick: bool) -> None:
    """A GridFunction on a locally refined mesh: ngser stores its values in node order (native
    pickle is faster here, and loads other values)."""
    try:
        from netgen.geom2d import unit_square
        from ngsolve import H1, GridFunction, Mesh, x, y
    except ImportError:
        print("\n## refined: NGSolve not installed")
        return
    mesh = Mesh(unit_square.GenerateMesh(maxh=0.02 if quick else 0.006))
    for el in mesh.Elements():
        mesh.SetRefinementFlag(el, el.nr % 3 == 0)
    mesh.Refine()
    gfu = GridFunction(H1(mesh, order=3))
    gfu.Set(x * y)

    def native() -> None:
        with open(tmp / "refined.pkl", "wb") as f:
            pickle.dump(gfu, f, protocol=5)
        with open(tmp / "refined.pkl", "rb") as f:
            pickle.load(f)

    path = tmp / "refined.msgpack"
    times = timed({"native": native, "ngser": lambda: save_load(gfu, path)}, repeat=3, settle=settle_io)
    native_mb = size(tmp / "refined.pkl") / 1e6
    note = f"{gfu.space.ndof:,} dofs; file {size(path) / 1e6:.1f} MB (native pickle {native_mb:.1f} MB)"
    rows = [times.row("ngser msgpack save+load (values in node order)", "ngser", "native", note)]
    report(f"order-3 GridFunction on a locally refined mesh ({mesh.ne:,} triangles) vs native pickle (no target)", rows)


def bench_mpi(tmp: Path, quick: bool) -> None:
    """A 1M-dof GridFunction on 2 MPI ranks: collective ngser save/load vs NGSolve's collective
    pickle (whose load of a distributed mesh crashes, so only its save is timed)."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    case = Path(__file__).with_name("mpi_case.py")
    maxh, repeat = ("0.02", "2") if quick else ("0.0034", "5")
    subprocess.run([str(mpiexec), "-n", "2", sys.executable, str(case), str(tmp), maxh, repeat], check=True)


SECTIONS = {
    "import": lambda tmp, quick: bench_import(quick),
    "arrays": bench_arrays,
    "hdf5": bench_hdf5,
    "small": bench_small,
    "owners": bench_owners,
    "ngsolve": bench_ngsolve,
    "curved": bench_curved,
    "refined": bench_refined,
    "checkpoint": bench_checkpoint,
    "mpi": bench_mpi,
    "memory": bench_memory,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], help="sections to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    args = parser.parse_args()
    print(
        f"ngser {ngser.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores; cases run in turns after a warm-up;\n"
        "times are the best run, ratios the median of the paired runs"
    )
    with tempfile.TemporaryDirectory(dir=os.environ.get("NGSER_BENCH_DIR")) as tmp:
        for name in args.sections or SECTIONS:
            SECTIONS[name](Path(tmp), args.quick)


if __name__ == "__main__":
    main()
