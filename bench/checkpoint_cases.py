"""The ``checkpoint`` section of ``bench/run.py`` (issue #14's targets).

- Appending one step of a 2M-dof GridFunction to a checkpoint that already holds its mesh,
  against ``np.save`` of the dof vector to a new file plus an ``fsync`` (target 1.2x): a file per
  step, all kept, as a series of ``.npy`` files is kept (both then write into new page-cache pages;
  overwriting one ``.npy`` reuses the pages it freed, which on this VM is up to 4x faster than
  writing new ones). The mean of the appends, growth copies of the checkpoint included, is shown
  too.
- Loading the last of 100 steps, against loading a file holding only that step (target 1.2x).
"""

from __future__ import annotations

import itertools
import os
import statistics
import warnings
from pathlib import Path

import numpy as np

import ngser
from common import report, settle_io, timed


def bench_checkpoint(tmp: Path, quick: bool) -> None:
    try:
        from netgen.geom2d import unit_square
        from ngsolve import H1, GridFunction, Mesh, sin, x, y
    except ImportError:
        print("\n## checkpoint: NGSolve not installed")
        return
    warnings.simplefilter("ignore")  # untrusted loads leave the geometry out, with a warning
    mesh = Mesh(unit_square.GenerateMesh(maxh=0.01 if quick else 0.0021))
    gfu = GridFunction(H1(mesh, order=3))
    gfu.Set(sin(3 * x) * y)
    vector = gfu.vec.FV().NumPy()
    path, npy = tmp / "series.h5", tmp / "step.npy"
    ck = ngser.Checkpoint(path, mode="w")
    ck.append({"u": gfu}, time=0.0)  # the mesh and the space: stored once, before the timed appends

    def append() -> None:
        ck.append({"u": gfu})

    numbers = itertools.count()

    def np_save() -> None:
        with open(npy.with_name(f"step{next(numbers)}.npy"), "wb") as f:
            np.save(f, vector)
            f.flush()
            os.fsync(f.fileno())

    times = timed({"append": append, "np.save": np_save}, repeat=21, settle=settle_io)
    rows = [times.row("Checkpoint.append of one step", "append", "np.save", f"{gfu.space.ndof:,} dofs")]
    mean = {name: statistics.fmean(runs) for name, runs in times.runs.items()}
    rows.append(("  mean of the appends (growth included)", mean["append"], mean["np.save"],
                 mean["append"] / mean["np.save"], "the checkpoint's data room grows 4x when full"))  # fmt: skip
    for step in tmp.glob("step*.npy"):
        step.unlink()
    while len(ck) < 100:
        ck.append({"u": gfu})
    ck.close()
    single = tmp / "single.h5"
    with ngser.Checkpoint(single, mode="w") as one:
        one.append({"u": gfu})
    series, alone = ngser.Checkpoint(path, mode="r"), ngser.Checkpoint(single, mode="r")

    def load_last() -> None:
        ngser.Checkpoint(path, mode="r").load(-1)

    def load_alone() -> None:
        ngser.Checkpoint(single, mode="r").load(-1)

    times = timed({"last": load_last, "alone": load_alone}, repeat=5, settle=settle_io)
    rows.append(times.row("load the last of 100 steps", "last", "alone", "vs a checkpoint of that step only"))
    series.close()
    alone.close()
    report(f"checkpoint of an order-3 GridFunction on {mesh.ne:,} triangles (target 1.2x)", rows, target=1.2)
