"""Peak memory of a save and of a load, each measured in a fresh process (``bench/run.py memory``).

A case runs in a child interpreter that prepares its data, resets the kernel's high-water mark
of its resident set (``/proc/self/clear_refs``, Linux), does one save or one load and reports
``VmHWM`` from ``/proc/self/status``:

* a save's **extra** is the peak minus the resident set before it (the data is in memory
  already): the target is at most 10% of the data;
* a load's **peak** is the high-water mark minus the resident set before it: the target is at
  most 1.1x the data it loads.

Cases: 2 GB of float64 arrays (8 arrays) in each format against pickle protocol 5 and raw h5py,
and an NGSolve mesh with an order-3 GridFunction against NGSolve's own pickle.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_CHILD = Path(__file__).resolve()
MIB = 1 << 20


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> int:
    """Reset the high-water mark to the current resident set; returns that."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _arrays(total: int) -> list[object]:
    import numpy as np

    return [np.full(total // 8 // 8, float(i)) for i in range(8)]


def _ngsolve(maxh: float) -> list[object]:
    from netgen.csg import unit_cube
    from ngsolve import H1, GridFunction, Mesh, x, y, z

    mesh = Mesh(unit_cube.GenerateMesh(maxh=maxh))
    gfu = GridFunction(H1(mesh, order=3))
    gfu.Set(x * y * z)
    return [mesh, gfu]


def _save(how: str, obj: object, path: str) -> None:
    import pickle

    if how == "pickle":
        with open(path, "wb") as stream:
            pickle.dump(obj, stream, protocol=5)
    elif how == "h5py":
        import h5py

        with h5py.File(path, "w") as file:
            for i, array in enumerate(obj):  # type: ignore[arg-type]
                file.create_dataset(str(i), data=array)
    else:
        import ngser

        ngser.save(obj, path)


def _load(how: str, path: str) -> object:
    import pickle

    if how == "pickle":
        with open(path, "rb") as stream:
            return pickle.load(stream)
    if how == "h5py":
        import h5py

        with h5py.File(path, "r") as file:
            return [file[str(i)][...] for i in range(len(file))]
    import warnings

    import ngser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrusted geometry of the NGSolve case
        return ngser.load(path)


def _warm_up(case: str, how: str, path: str) -> None:
    """One save and load of a tiny case the same way, so that imports do not count."""
    import h5py  # noqa: F401
    import msgpack  # noqa: F401

    tiny = _arrays(8 * 8 * 1024) if case == "arrays" else _ngsolve(0.5)
    warm = path + ".warm" + os.path.splitext(path)[1]
    _save(how, tiny, warm)
    _load(how, warm)
    os.unlink(warm)


def child(case: str, size: str, how: str, phase: str, path: str) -> dict[str, int]:
    """One measurement (in this process): ``phase`` is ``save`` or ``load``."""
    _warm_up(case, how, path)  # modules imported and caches filled before the base line is taken
    if phase == "save":
        start = _status("VmRSS")
        obj = _arrays(int(size)) if case == "arrays" else _ngsolve(float(size))
        before = _reset_peak()
        _save(how, obj, path)
        return {"data": before - start, "before": before, "peak": _status("VmHWM"), "file": os.path.getsize(path)}
    before = _reset_peak()
    loaded = _load(how, path)
    result = {"before": before, "peak": _status("VmHWM"), "after": _status("VmRSS"), "file": os.path.getsize(path)}
    del loaded
    return result


def measure(case: str, size: str, how: str, phase: str, path: Path) -> dict[str, int]:
    """Run :func:`child` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, str(_CHILD), case, size, how, phase, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def bench_memory(tmp: Path, quick: bool) -> None:
    if not Path("/proc/self/clear_refs").exists():
        print("\n## memory: needs Linux (/proc/self/clear_refs)")
        return
    total = (256 if quick else 2048) * MIB
    print(f"\n## Peak memory: {total / 1e9:.1f} GB of float64 arrays (target: save +10%, load 1.1x of the data)")
    print(f"{'case':<28} {'save extra':>12} {'/ data':>8} {'load peak':>12} {'/ data':>8}")
    cases = (("pickle", ".pkl"), ("h5py", ".h5"), ("ngser", ".msgpack"), ("ngser", ".pkl"), ("ngser", ".h5"))
    for how, suffix in cases:
        path = tmp / f"memory{suffix}"
        saved = measure("arrays", str(total), how, "save", path)
        loaded = measure("arrays", str(total), how, "load", path)
        extra, peak = saved["peak"] - saved["before"], loaded["peak"] - loaded["before"]
        label = f"{how} {suffix[1:]}" if how == "ngser" else f"{how} (baseline)"
        print(
            f"{label:<28} {extra / MIB:>9.0f} MiB {extra / total:>7.2f}x {peak / MIB:>9.0f} MiB {peak / total:>7.2f}x"
        )
        path.unlink()
    try:
        import ngsolve  # noqa: F401
    except ImportError:
        return
    maxh = "0.06" if quick else "0.0215"
    print(f"\n## Peak memory: NGSolve mesh (maxh={maxh}) + order-3 GridFunction, against NGSolve's own pickle")
    print("(save: extra over the objects in memory; load: peak over the loaded objects' memory)")
    print(f"{'case':<28} {'objects':>10} {'save extra':>12} {'ratio':>7} {'loaded':>10} {'load peak':>11} {'ratio':>7}")
    for how, suffix in (("pickle", ".pkl"), ("ngser", ".msgpack"), ("ngser", ".pkl"), ("ngser", ".h5")):
        path = tmp / f"memory-ngsolve{suffix}"
        saved = measure("ngsolve", maxh, how, "save", path)
        loaded = measure("ngsolve", maxh, how, "load", path)
        extra, peak = saved["peak"] - saved["before"], loaded["peak"] - loaded["before"]
        kept = loaded["after"] - loaded["before"]
        label = f"{how} {suffix[1:]}" if how == "ngser" else "native pickle (baseline)"
        print(
            f"{label:<28} {saved['data'] / MIB:>6.0f} MiB {extra / MIB:>8.0f} MiB {extra / saved['data']:>6.2f}x "
            f"{kept / MIB:>6.0f} MiB {peak / MIB:>7.0f} MiB {peak / kept:>6.2f}x"
        )
        path.unlink()


if __name__ == "__main__":
    print(json.dumps(child(*sys.argv[1:6])))
