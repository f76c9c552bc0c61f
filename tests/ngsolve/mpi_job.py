"""The MPI jobs of ``test_mpi.py``, run with ``mpiexec -n N python mpi_job.py JOB DIR``.

Each rank writes JSON lines to ``DIR/JOB.RANK.jsonl`` (``{"rank0": ...}`` from rank 0 and
``{"rank": r, ...}`` for what every rank saw); the test reads them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import netgen.meshing as nm
import ngsolve as ng
from mpi4py import MPI

import ngser
import ngser.mpi

COMM = MPI.COMM_WORLD
OUT: list[Path] = []


def emit(payload: dict[str, Any]) -> None:
    with OUT[0].open("a") as out:
        out.write(json.dumps(payload) + "\n")


U = ng.sin(3 * ng.x) * ng.y + ng.z**2
V = ng.CF((ng.x * ng.y, ng.z, 1))
U2 = ng.x**3 * ng.y + ng.exp(ng.x)


def _distributed(kind: str) -> ng.Mesh:
    if COMM.rank == 0:
        if kind == "3d":
            from netgen.csg import unit_cube

            ngmesh = unit_cube.GenerateMesh(maxh=0.3)
        else:
            from netgen.geom2d import SplineGeometry

            geo = SplineGeometry()
            geo.AddCircle((0, 0), 1, bc="circle")
            ngmesh = geo.GenerateMesh(maxh=0.3)
        ngmesh.Distribute(COMM)
    else:
        ngmesh = nm.Mesh.Receive(COMM)
    return ng.Mesh(ngmesh)


def measures(state: dict[str, Any]) -> dict[str, float]:
    """What must agree between the saved and every loaded state (collective on a distributed mesh)."""
    mesh, u = state["mesh"], state["u"]
    out = {
        "volume": ng.Integrate(1, mesh),
        "u2": ng.Integrate(u * u, mesh),
        "ndof": float(u.space.ndofglobal),
    }
    if "v" in state:
        out["v2"] = ng.Integrate(ng.InnerProduct(state["v"], state["v"]), mesh)
        out["vdof"] = float(state["v"].space.ndofglobal)
        out["u_err"] = ng.Integrate((u - U) ** 2, mesh)
    else:
        out["boundary"] = ng.Integrate(u * ng.x, mesh.Boundaries("circle"))
    return out


def _report(**values: Any) -> None:
    if COMM.rank == 0:
        emit({"rank0": values})


def save(kind: str, folder: Path) -> None:
    mesh = _distributed(kind)
    if kind == "3d":
        u = ng.GridFunction(ng.H1(mesh, order=3, dirichlet="left"), name="u")
        u.Set(U)
        v = ng.GridFunction(ng.VectorH1(mesh, order=2), name="v")
        v.Set(V)
        state: dict[str, Any] = {"mesh": mesh, "u": u, "v": v, "t": 0.5, "steps": [1, 2]}
    else:
        mesh.Curve(3)
        u = ng.GridFunction(ng.H1(mesh, order=4), name="u")
        u.Set(U2)
        state = {"mesh": mesh, "u": u, "t": 0.5, "steps": [1, 2]}
    ngser.save(state, folder / f"{kind}.h5", comm=COMM)
    _report(**measures(state))


def load(kind: str, folder: Path) -> None:
    state = ngser.load(folder / f"{kind}.h5", comm=COMM)
    got = measures(state)
    emit({"rank": COMM.rank, "t": state["t"], "steps": state["steps"], "nv": state["mesh"].nv})
    _report(**got, ranks=int(state["mesh"].comm.size))


def resave(kind: str, folder: Path) -> None:
    """Load on this number of ranks (another partition) and save again."""
    state = ngser.load(folder / f"{kind}.h5", comm=COMM)
    ngser.save(state, folder / f"{kind}-again.h5", comm=COMM)
    _report(ranks=COMM.size)


def series(kind: str, folder: Path) -> None:
    """Three steps of a distributed GridFunction appended to a collective checkpoint."""
    mesh = _distributed("3d")
    u = ng.GridFunction(ng.H1(mesh, order=2), name="u")
    with ngser.Checkpoint(folder / "series.h5", mode="w", comm=COMM) as ck:
        for step in range(3):
            u.Set((step + 1) * U)
            ck.append({"mesh": mesh, "u": u, "step": step}, time=0.1 * step)
            _report(**{f"u2_{step}": ng.Integrate(u * u, mesh)}) if step == 2 else None
        emit({"rank": COMM.rank, "len": len(ck), "times": ck.times})


def series_load(kind: str, folder: Path) -> None:
    """Every step of the checkpoint, distributed over this job's ranks."""
    found = {}
    with ngser.Checkpoint(folder / "series.h5", mode="r", comm=COMM) as ck:
        states = [ck.load(step) for step in range(len(ck))]
        for state in states:
            found[f"u2_{state['step']}"] = ng.Integrate(state["u"] * state["u"], state["mesh"])
        found["same_mesh"] = all(s["mesh"] is states[0]["mesh"] for s in states)
    _report(**found)


def dies(kind: str, folder: Path) -> None:
    """Rank 2 dies while the values are gathered: mpiexec ends the job, the old file stays."""
    import os

    import ngser.mpi._gather as gather

    mesh = _distributed("3d")
    u = ng.GridFunction(ng.H1(mesh, order=2), name="u")
    if COMM.rank == 2:
        gather.dof_keys = lambda *args: os._exit(3)  # type: ignore[assignment]
    ngser.save({"mesh": mesh, "u": u}, folder / "kept.h5", comm=COMM)


def alone(kind: str, folder: Path) -> None:
    """Rank 1 saves alone; the others do not call."""
    mesh = _distributed("3d")
    if COMM.rank == 1:
        try:
            ngser.mpi.save({"mesh": mesh}, folder / "alone.h5", COMM, timeout=1.0)
        except ngser.CollectiveError as exc:
            emit({"rank": 1, "error": type(exc).__name__, "message": str(exc)})
    COMM.Barrier()


def different(kind: str, folder: Path) -> None:
    """The ranks pass different objects."""
    mesh = _distributed("3d")
    state = {"mesh": mesh} if COMM.rank != 2 else {"mesh": mesh, "t": 1.0}
    try:
        ngser.mpi.save(state, folder / "different.h5", COMM, timeout=5.0)
    except ngser.CollectiveError as exc:
        emit({"rank": COMM.rank, "error": type(exc).__name__, "message": str(exc)})


def refused(kind: str, folder: Path) -> None:
    """Objects that cannot be saved collectively: every rank gets the error, the file stays."""
    mesh = _distributed("3d")
    u = ng.GridFunction(ng.H1(mesh, order=1), name="u")
    cases = {
        "expression": {"mesh": mesh, "cf": u * 2},
        "component": {"u": ng.GridFunction(ng.H1(mesh) * ng.H1(mesh)).components[0]},
        "wrong comm": {"mesh": mesh},
    }
    for name, state in cases.items():
        comm = COMM.Split(0 if COMM.rank < 2 else 1, COMM.rank) if name == "wrong comm" else COMM
        try:
            ngser.mpi.save(state, folder / "kept.h5", comm, timeout=5.0)
        except ngser.NgserError as exc:
            emit({"rank": COMM.rank, "case": name, "error": type(exc).__name__, "message": str(exc)})
        COMM.Barrier()


if __name__ == "__main__":
    job, where = sys.argv[1], Path(sys.argv[2])
    OUT.append(where / f"{job}.{COMM.rank}.jsonl")
    kind = sys.argv[3] if len(sys.argv) > 3 else "3d"
    {
        "save": save,
        "load": load,
        "resave": resave,
        "series": series,
        "series_load": series_load,
        "dies": dies,
        "alone": alone,
        "different": different,
        "refused": refused,
    }[job](kind, where)
