"""A heat equation that checkpoints, is killed, and resumes (``make demo``).

The run solves u_t = Δu + f on the unit square (implicit Euler, 60 steps) and appends
``{"u": gfu, "step": n}`` to one checkpoint every 5 steps. The demonstration:

1. runs the simulation without interruption, for reference;
2. starts it again in a child process with a new checkpoint and kills that process (SIGKILL) in
   the middle of its run;
3. resumes: opens the checkpoint, loads the last step, and runs on from there to the end;
4. checks that the resumed run ends with the reference's final solution, that the file holds
   the mesh once (the steps refer to it), and that it is a VTKHDF time series of every step
   (``vtk=True``): open ``heat.vtkhdf`` in ParaView to watch ``u`` evolve.

``python examples/heat_checkpoint.py [folder]``; exit status 0 when every check holds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import ngsolve
from netgen.geom2d import unit_square
from ngsolve import H1, BilinearForm, GridFunction, LinearForm, Mesh, dx, exp, grad, x, y

import ngser

STEPS, EVERY, TAU = 60, 5, 0.01


def simulate(
    checkpoint: ngser.Checkpoint | None, gfu: GridFunction | None = None, start: int = 0, pause: float = 0.0
) -> GridFunction:
    """Run from step ``start`` (``gfu`` holds its solution) to STEPS, appending to ``checkpoint``."""
    if gfu is None:
        mesh = Mesh(unit_square.GenerateMesh(maxh=0.05))
        gfu = GridFunction(H1(mesh, order=3, dirichlet=".*"), name="u")
    fes = gfu.space
    u, v = fes.TnT()
    m = BilinearForm(u * v * dx + TAU * grad(u) * grad(v) * dx).Assemble()
    inverse = m.mat.Inverse(fes.FreeDofs())
    source = LinearForm(TAU * 10 * exp(-40 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)) * v * dx).Assemble()
    mass = BilinearForm(u * v * dx).Assemble()
    rhs = gfu.vec.CreateVector()
    for n in range(start + 1, STEPS + 1):
        rhs.data = mass.mat * gfu.vec + source.vec
        gfu.vec.data = inverse * rhs
        if checkpoint is not None and n % EVERY == 0:
            checkpoint.append({"u": gfu, "step": n}, time=n * TAU)
            print(f"checkpointed step {n}", flush=True)
            time.sleep(pause)  # the child that is killed runs slowly, so that the kill lands mid-run
    return gfu


def main(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    failures = 0

    def check(label: str, ok: bool) -> None:
        nonlocal failures
        failures += not ok
        print(f"  [{'ok' if ok else 'FAILED'}] {label}")

    print("1. the reference run, uninterrupted")
    reference = simulate(None)

    print("2. the same run with a checkpoint, killed mid-run")
    path = folder / "heat.vtkhdf"  # an ngser checkpoint and, with vtk=True, a file ParaView opens
    child = subprocess.Popen([sys.executable, __file__, "--child", str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for line in child.stdout:
        print("   ", line.strip())
        if line.startswith(f"checkpointed step {STEPS // 2}"):
            child.send_signal(signal.SIGKILL)
            break
    child.wait()
    check(f"the child was killed (exit status {child.returncode})", child.returncode == -signal.SIGKILL)

    print("3. resume from the last step in the checkpoint")
    # Load and append with one Checkpoint: the loaded mesh and space are known to be the stored ones,
    # so the steps appended now refer to them. trusted=True: our own file (its geometry is loaded).
    with ngser.Checkpoint(path, vtk=True, trusted=True) as ck:
        state = ck.load(-1)
        times = f"{ck.times[0]:.2f} ... {ck.times[-1]:.2f}"
        print(f"    {len(ck)} steps kept, times {times}; resuming at step {state['step']}")
        resumed = simulate(ck, state["u"], start=state["step"])

    print("4. checks")
    difference = reference.vec.FV().NumPy() - resumed.vec.FV().NumPy()
    check(
        f"the resumed run ends where the reference does (largest difference {abs(difference).max():.1e})",
        abs(difference).max() < 1e-12,
    )
    with ngser.Checkpoint(path, mode="r", trusted=True) as ck:
        check(f"the checkpoint holds every {EVERY}th step ({len(ck)} steps)", len(ck) == STEPS // EVERY)
        first, last = ck.load(0), ck.load(-1)
        check("steps share one mesh", first["u"].space.mesh is last["u"].space.mesh)
        size, vector = os.stat(path).st_blocks * 512, reference.vec.FV().NumPy().nbytes  # disk used
        with h5py.File(path, "r") as f:  # the VTK view: its cells once, point data of every step
            view = f["VTKHDF"]
            check(
                f"the VTK view lists every step ({int(view['Steps'].attrs['NSteps'])})",
                list(view["Steps/Values"][:]) == ck.times,
            )
            size -= sum(d.id.get_storage_size() for d in _datasets(view))
        mesh_bytes = len(ngser.dumps(reference.space.mesh))
        check(
            f"the file ({size / 1e6:.2f} MB) holds the mesh ({mesh_bytes / 1e6:.2f} MB) once and "
            f"{len(ck)} vectors of {vector / 1e6:.2f} MB",
            size < 1.05 * (mesh_bytes + len(ck) * vector) + 100_000,
        )
    print(f"{'all checks passed' if not failures else f'{failures} checks FAILED'}")
    return 1 if failures else 0


def _datasets(group: h5py.Group) -> list[h5py.Dataset]:
    found: list[h5py.Dataset] = []
    group.visititems(lambda _, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return found


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        with ngser.Checkpoint(sys.argv[2], mode="w", vtk=True) as checkpoint:
            simulate(checkpoint, pause=0.2)
        sys.exit(0)
    ngsolve.SetNumThreads(1)
    if len(sys.argv) > 1:
        sys.exit(main(Path(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(main(Path(tmp)))
