"""The NGSolve pickling tutorial, run through ngser in every format (``make demo``).

Each step of the tutorial (a mesh, two GridFunctions sharing a space, an expression tree) is
saved with ``ngser.save`` and loaded with ``ngser.load`` as pickle, msgpack and HDF5, and the
script prints what it checked: counts, shared spaces, the trees before and after, and
integrals of the loaded objects against the originals.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from pathlib import Path

from netgen.geom2d import unit_square
from ngsolve import H1, GridFunction, Integrate, Mesh, x, y

import ngser
from ngser.backends import available

EXTENSION = {"pickle": ".pkl", "msgpack": ".msgpack", "hdf5": ".h5"}


def main(folder: Path) -> int:
    failures = 0

    def check(label: str, ok: bool) -> None:
        nonlocal failures
        failures += not ok
        print(f"    {'ok ' if ok else 'FAIL'} {label}")

    mesh = Mesh(unit_square.GenerateMesh(maxh=0.3))
    fes = H1(mesh, order=2)
    gfu1, gfu2 = GridFunction(fes), GridFunction(fes)
    gfu1.Set(x)
    gfu2.Set(y)
    func = x * gfu1 + y
    print(f"ngser {ngser.__version__}: the NGSolve pickling tutorial in {', '.join(available())}")
    print(f"mesh: {mesh.nv} vertices, {mesh.ne} elements; func = x*gfu1 + y")

    for fmt in available():
        ext = EXTENSION[fmt]
        print(f"\n== {fmt} ==")

        path = folder / f"mesh{ext}"
        ngser.save(mesh, path)
        mesh2 = ngser.load(path)
        print(f"  mesh{ext}: {path.stat().st_size} bytes -> mesh2.nv, mesh2.ne = {mesh2.nv}, {mesh2.ne}")
        check("same vertex and element counts", (mesh2.nv, mesh2.ne) == (mesh.nv, mesh.ne))
        check("same area", abs(Integrate(1, mesh2) - Integrate(1, mesh)) < 1e-12)

        path = folder / f"gridfunction{ext}"
        ngser.save([gfu1, gfu2], path)
        gfv1, gfv2 = ngser.load(path)
        print(f"  gridfunction{ext}: {path.stat().st_size} bytes")
        print(f"    one space shared by both, as saved: {'yes' if gfv1.space is gfv2.space else 'NO'}")
        check("the two GridFunctions share one space", gfv1.space is gfv2.space)
        check("values kept", abs(Integrate(gfv1 * gfv2, gfv1.space.mesh) - Integrate(x * y, mesh)) < 1e-12)

        path = folder / f"func{ext}"
        ngser.save([mesh, func], path)
        mesh3, func2 = ngser.load(path)
        print(f"  func{ext}: {path.stat().st_size} bytes")
        print("    before:", " | ".join(str(func).split("\n")[:2]).strip())
        print("    after: ", " | ".join(str(func2).split("\n")[:2]).strip())
        check("the tree integrates to the same value", abs(Integrate(func2, mesh3) - Integrate(func, mesh)) < 1e-12)

        path = folder / f"shared{ext}"
        ngser.save({"gfu": gfu1, "func": func}, path)
        loaded = ngser.load(path)
        loaded["gfu"].vec[:] = 0
        check(
            "the loaded tree follows the loaded GridFunction (native pickle copies it)",
            abs(Integrate(loaded["func"], loaded["gfu"].space.mesh) - Integrate(y, mesh)) < 1e-12,
        )

    native = len(pickle.dumps([gfu1, func], protocol=5))
    ours = len(ngser.dumps([gfu1, func], format="msgpack"))
    print(f"\nsize of [gfu1, func]: NGSolve's own pickle {native} bytes, ngser msgpack {ours} bytes")
    print("all checks passed" if not failures else f"{failures} checks FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NGSER_DEMO_DIR")
    if out:  # `make demo` keeps the files in demo-output/tutorial for `ngser info` and `h5ls`
        Path(out).mkdir(parents=True, exist_ok=True)
        sys.exit(main(Path(out)))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(main(Path(tmp)))
