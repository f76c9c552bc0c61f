"""``bench/run.py mpi`` runs this with ``mpiexec -n 2``: a collective ngser save and load of an
H1 GridFunction against NGSolve's own collective pickle of it, interleaved, best of N."""

from __future__ import annotations

import os
import pickle
import sys
import time
import warnings
from pathlib import Path

import netgen.meshing as nm
import ngsolve as ng
from mpi4py import MPI

import ngser

warnings.filterwarnings("ignore", category=ngser.NgserWarning)

COMM = MPI.COMM_WORLD


def main(folder: Path, maxh: float, repeat: int) -> None:
    if COMM.rank == 0:
        from netgen.geom2d import unit_square

        ngmesh = unit_square.GenerateMesh(maxh=maxh)
        ngmesh.Distribute(COMM)
    else:
        ngmesh = nm.Mesh.Receive(COMM)
    mesh = ng.Mesh(ngmesh)
    gfu = ng.GridFunction(ng.H1(mesh, order=3))
    gfu.Set(ng.sin(ng.x) * ng.y)
    ndof = gfu.space.ndofglobal
    path, native = folder / "mpi.h5", folder / "mpi.pkl"

    def ngser_save() -> None:
        ngser.save({"u": gfu}, path, comm=COMM)

    def ngser_load() -> None:
        ngser.load(path, comm=COMM)

    def ngsolve_save() -> None:
        data = pickle.dumps(gfu, protocol=5)  # collective: rank 0 gets everything
        if COMM.rank == 0:
            native.write_bytes(data)

    checkpoint = ngser.Checkpoint(folder / "series.h5", mode="w", comm=COMM)
    checkpoint.append({"mesh": mesh, "u": gfu})  # the first step stores the mesh and space

    def ngser_append() -> None:
        checkpoint.append({"mesh": mesh, "u": gfu})

    cases = {
        "ngser save": ngser_save,
        "ngser load": ngser_load,
        "NGSolve pickle save": ngsolve_save,
        "ngser Checkpoint.append": ngser_append,
    }
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeat):
        for name, case in cases.items():
            COMM.Barrier()
            start = time.perf_counter()
            case()
            COMM.Barrier()
            best[name] = min(best[name], time.perf_counter() - start)
    checkpoint.close()
    if COMM.rank == 0:
        print(f"H1(order=3) GridFunction, {ndof:,} dofs, {COMM.size} ranks, best of {repeat}:")
        for name, seconds in best.items():
            print(f"  {name:26s} {seconds * 1000:8.0f} ms")
        sizes = os.path.getsize(path) / 1e6, os.path.getsize(native) / 1e6
        print(f"  files: ngser {sizes[0]:.1f} MB, NGSolve pickle {sizes[1]:.1f} MB")


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))
