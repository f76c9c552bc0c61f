"""Collective save and load (``ngser.mpi``) in real MPI jobs: ``mpiexec`` of the ``mpich`` wheel.

A 3D mesh with an H1 and a VectorH1 GridFunction and a curved 2D mesh are saved on 3 ranks and
loaded on 2, 3 and 4 ranks and serially (in this process); integrals, norms and the global dof
counts must agree to 1e-12. Misuse ends with an error on every rank that called, in bounded time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ngser
import ngser.mpi

pytestmark = pytest.mark.filterwarnings("ignore:the netgen.*node was not loaded because the file is not trusted")
MPIEXEC = Path(sys.executable).parent / "mpiexec"
JOB = Path(__file__).with_name("mpi_job.py")

pytest.importorskip("mpi4py")
if not MPIEXEC.exists():  # pragma: no cover - the mpi extra brings it
    pytest.fail(f"{MPIEXEC} is missing: install the project's mpi extra (pip install -e '.[mpi]')")


def _run(ranks: int, job: str, folder: Path, kind: str = "3d", timeout: float = 240) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for old in folder.glob(f"{job}.*.jsonl"):
        old.unlink()
    done = subprocess.run(
        [str(MPIEXEC), "-n", str(ranks), sys.executable, str(JOB), job, str(folder), kind],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert done.returncode == 0, f"mpiexec -n {ranks} {job} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return [json.loads(line) for out in sorted(folder.glob(f"{job}.*.jsonl")) for line in out.read_text().splitlines()]


def _rank0(lines: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [line["rank0"] for line in lines if "rank0" in line]
    return found  # type: ignore[no-any-return]


def _agree(got: dict[str, float], want: dict[str, float]) -> None:
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, float]]]:
    folder = tmp_path_factory.mktemp("mpi")
    return folder, {kind: _rank0(_run(3, "save", folder, kind)) for kind in ("3d", "2d")}


@pytest.mark.parametrize("ranks", [2, 3, 4])
@pytest.mark.parametrize("kind", ["3d", "2d"])
def test_load_on_other_rank_counts(saved: Any, kind: str, ranks: int) -> None:
    folder, written = saved
    lines = _run(ranks, "load", folder, kind)
    got = _rank0(lines)
    assert got.pop("ranks") == ranks
    _agree(got, written[kind])
    per_rank = [line for line in lines if "rank" in line]
    assert sorted(line["rank"] for line in per_rank) == list(range(ranks))
    assert all(line["t"] == 0.5 and line["steps"] == [1, 2] for line in per_rank)
    assert per_rank[0]["nv"] >= 0 and sum(line["nv"] for line in per_rank if line["rank"]) > 0


@pytest.mark.parametrize("kind", ["3d", "2d"])
def test_load_serially_gives_global_objects(saved: Any, kind: str) -> None:
    sys.path.insert(0, str(JOB.parent))
    try:
        from mpi_job import measures
    finally:
        sys.path.remove(str(JOB.parent))
    folder, written = saved
    state = ngser.load(folder / f"{kind}.h5")
    assert int(state["mesh"].comm.size) == 1
    _agree(measures(state), written[kind])
    assert state["t"] == 0.5


@pytest.mark.parametrize("kind", ["3d", "2d"])
def test_the_file_does_not_depend_on_the_partition(saved: Any, kind: str) -> None:
    """Loaded on 2 ranks (another partition) and saved again: the same global arrays."""
    folder, _ = saved
    _run(2, "resave", folder, kind)
    first, again = ngser.load(folder / f"{kind}.h5"), ngser.load(folder / f"{kind}-again.h5")
    assert np.array_equal(first["u"].vec.FV().NumPy(), again["u"].vec.FV().NumPy())
    meshes = [s["mesh"].ngmesh for s in (first, again)]
    assert np.array_equal(*(np.array(m.Coordinates()) for m in meshes))
    cells = [(m.Elements3D() if kind == "3d" else m.Elements2D()).NumPy()["nodes"] for m in meshes]
    assert np.array_equal(*cells)
    assert first["t"] == again["t"] == 0.5


def test_a_checkpoint_of_a_parallel_run_restarts_on_other_rank_counts(tmp_path: Path) -> None:
    lines = _run(3, "series", tmp_path)
    written = _rank0(lines)
    assert [line["len"] for line in lines if "len" in line] == [3, 3, 3]
    assert all(line["times"] == [0.0, 0.1, 0.2] for line in lines if "times" in line)
    for ranks in (2, 4):
        got = _rank0(_run(ranks, "series_load", tmp_path))
        assert got["same_mesh"] is True  # distributed once for all the steps
        assert got["u2_2"] == pytest.approx(written["u2_2"], rel=1e-12)
        assert got["u2_0"] == pytest.approx(written["u2_2"] / 9, rel=1e-12)
    with ngser.Checkpoint(tmp_path / "series.h5", mode="r") as ck:  # serially: global objects
        first, last = ck.load(0), ck.load(-1)
        assert first["mesh"] is last["mesh"]  # the mesh was stored once
        assert np.allclose(last["u"].vec.FV().NumPy(), 3 * first["u"].vec.FV().NumPy(), rtol=1e-10, atol=1e-12)


def test_a_rank_alone_gets_an_error_in_bounded_time(tmp_path: Path) -> None:
    lines = _run(3, "alone", tmp_path, timeout=60)
    (error,) = [line for line in lines if "error" in line]
    assert error["error"] == "CollectiveError" and "did not join" in error["message"]
    assert not (tmp_path / "alone.h5").exists()


def test_ranks_passing_different_objects_all_get_an_error(tmp_path: Path) -> None:
    lines = _run(3, "different", tmp_path, timeout=60)
    errors = {line["rank"]: line for line in lines if "error" in line}
    assert sorted(errors) == [0, 1, 2]
    assert all(line["error"] == "CollectiveError" for line in errors.values())
    assert "pass the same objects" in errors[0]["message"]
    assert not (tmp_path / "different.h5").exists()


def test_refused_objects_raise_on_every_rank_and_keep_the_previous_file(tmp_path: Path) -> None:
    (tmp_path / "kept.h5").write_bytes(b"previous")
    lines = _run(3, "refused", tmp_path, timeout=120)
    by_case: dict[str, dict[int, str]] = {}
    for line in lines:
        by_case.setdefault(line["case"], {})[line["rank"]] = line["error"]
    assert by_case["expression"] == {0: "UnsupportedTypeError", 1: "UnsupportedTypeError", 2: "UnsupportedTypeError"}
    assert by_case["component"] == {0: "UnsupportedTypeError", 1: "UnsupportedTypeError", 2: "UnsupportedTypeError"}
    assert by_case["wrong comm"] == {0: "ArgumentError", 1: "ArgumentError", 2: "ArgumentError"}
    assert (tmp_path / "kept.h5").read_bytes() == b"previous"


def test_a_rank_dying_during_the_save_leaves_the_previous_file(tmp_path: Path) -> None:
    (tmp_path / "kept.h5").write_bytes(b"previous")
    done = subprocess.run(
        [str(MPIEXEC), "-n", "3", sys.executable, str(JOB), "dies", str(tmp_path)],
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode != 0  # mpiexec ended the job
    assert (tmp_path / "kept.h5").read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".h5") == ["kept.h5"]


def test_a_collective_call_needs_a_communicator_and_a_file_name(tmp_path: Path) -> None:
    with pytest.raises(ngser.ArgumentError, match="mpi4py communicator"):
        ngser.save({}, tmp_path / "x.h5", comm="world")
    from mpi4py import MPI

    with pytest.raises(ngser.ArgumentError, match="file name"):
        ngser.mpi.save({}, open(tmp_path / "y.h5", "wb"), MPI.COMM_SELF)  # noqa: SIM115
