"""Checkpoints: steps appended to one HDF5 file, stable objects stored once, keep=N reusing the
space of dropped steps, damaged files refused, and appends killed at random moments leaving
every earlier step loadable."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import ngser
from ngser.backends.msgpack_format import MsgpackBackend, PlannedFile
from ngser.checkpoint._describe import describe_checkpoint, verify_checkpoint
from ngser.serializers import Registry, Serializer


class Grid:
    """A stand-in for a mesh: big, and the same from step to step."""

    def __init__(self, n: int) -> None:
        self.points = np.arange(3.0 * n).reshape(n, 3)
        self.version = 0


class Field:
    def __init__(self, grid: Grid, values: np.ndarray) -> None:
        self.grid = grid
        self.values = values


class GridSerializer(Serializer):
    name = "test.Grid"
    types = (Grid,)

    def fingerprint(self, obj: Grid) -> Any:
        return obj.version

    def dump(self, obj: Grid) -> Any:
        return {"points": obj.points, "version": obj.version}

    def load(self, state: Any) -> Grid:
        grid = Grid(0)
        grid.points, grid.version = state["points"], state["version"]
        return grid


class FieldSerializer(Serializer):
    name = "test.Field"
    types = (Field,)

    def dump(self, obj: Field) -> Any:
        return {"grid": obj.grid, "values": obj.values}

    def load(self, state: Any) -> Field:
        return Field(state["grid"], state["values"])


def disk_size(path: Path) -> int:
    """Bytes of disk the file uses: a checkpoint reserves room in doubling steps, as a hole."""
    return os.stat(path).st_blocks * 512


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.add(GridSerializer())
    reg.add(FieldSerializer())
    return reg


def test_steps_come_back_and_share_their_stable_objects(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "run.h5"
    grid = Grid(1000)
    with ngser.Checkpoint(path, registry=registry) as ck:
        for n in range(5):
            assert ck.append({"f": Field(grid, np.full(10, float(n))), "n": n}, time=0.5 * n) == n
    ck = ngser.Checkpoint(path, mode="r", registry=registry)
    assert len(ck) == 5 and ck.times == [0.0, 0.5, 1.0, 1.5, 2.0]
    first, last = ck.load(0), ck.load(-1)
    assert first["n"] == 0 and last["n"] == 4 and np.array_equal(last["f"].values, np.full(10, 4.0))
    assert first["f"].grid is last["f"].grid and np.array_equal(last["f"].grid.points, grid.points)
    with pytest.raises(ngser.NotFoundError, match="step 5 does not exist"):
        ck.load(5)
    with pytest.raises(ngser.ArgumentError, match="mode='r'"):
        ck.append(1)
    ck.close()


def test_a_stable_object_is_stored_once(tmp_path: Path, registry: Registry) -> None:
    """50 steps of a 100-value field on a 3 MB grid: the grid once, plus 50 small vectors."""
    grid = Grid(125_000)
    path = tmp_path / "run.h5"
    with ngser.Checkpoint(path, registry=registry) as ck:
        for n in range(50):
            ck.append(Field(grid, np.full(100, float(n))))
    one = tmp_path / "one.h5"
    with ngser.Checkpoint(one, registry=registry) as ck:
        ck.append(Field(grid, np.zeros(100)))
    assert disk_size(path) < 1.05 * disk_size(one) + 50 * 2_000


def test_a_changed_stable_object_is_stored_again(tmp_path: Path, registry: Registry) -> None:
    grid = Grid(10)
    path = tmp_path / "run.h5"
    with ngser.Checkpoint(path, registry=registry) as ck:
        ck.append(Field(grid, np.zeros(3)))
        grid.points = grid.points * 2
        grid.version += 1  # the fingerprint changes with it
        ck.append(Field(grid, np.zeros(3)))
        assert not np.array_equal(ck.load(0).grid.points, ck.load(1).grid.points)
        assert np.array_equal(ck.load(1).grid.points, grid.points)


def test_reopening_does_not_store_the_stable_object_again(tmp_path: Path, registry: Registry) -> None:
    grid = Grid(125_000)
    path = tmp_path / "run.h5"
    with ngser.Checkpoint(path, registry=registry) as ck:
        ck.append(Field(grid, np.zeros(10)))
    size = disk_size(path)
    for n in range(3):  # a restarted run appends with a grid equal to the stored one
        with ngser.Checkpoint(path, registry=registry) as ck:
            ck.append(Field(grid, np.full(10, float(n))))
            loaded = ck.load(-1)
            ck.append(loaded)  # a loaded object is the stored one
    assert disk_size(path) < size + 100_000  # no second 3 MB grid
    with ngser.Checkpoint(path, mode="r", registry=registry) as ck:
        assert len(ck) == 7 and ck.load(0).grid is ck.load(6).grid


def test_keep_drops_old_steps_and_reuses_their_space(tmp_path: Path, registry: Registry) -> None:
    grid = Grid(10)
    path = tmp_path / "rolling.h5"
    sizes = []
    with ngser.Checkpoint(path, keep=3, registry=registry) as ck:
        for n in range(60):
            ck.append(Field(grid, np.full(20_000, float(n))), time=float(n))
            sizes.append(disk_size(path))
        assert len(ck) == 3 and ck.times == [57.0, 58.0, 59.0]
        assert [ck.load(i).values[0] for i in range(3)] == [57.0, 58.0, 59.0]
    assert sizes[-1] == sizes[20]  # steady: dropped steps' bytes are reused
    with ngser.Checkpoint(path, mode="r", registry=registry) as ck:
        assert ck.load(0).grid is ck.load(2).grid


def test_mode_w_starts_anew(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with ngser.Checkpoint(path) as ck:
        ck.append([1, 2])
    with ngser.Checkpoint(path, mode="w") as ck:
        assert len(ck) == 0
        ck.append("x")
    with ngser.Checkpoint(path, mode="r") as ck:
        assert len(ck) == 1 and ck.load(0) == "x"


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ngser.ArgumentError, match="mode"):
        ngser.Checkpoint(tmp_path / "a.h5", mode="x")  # type: ignore[arg-type]
    with pytest.raises(ngser.ArgumentError, match="keep"):
        ngser.Checkpoint(tmp_path / "a.h5", keep=0)
    with pytest.raises(ngser.NotFoundError):
        ngser.Checkpoint(tmp_path / "missing.h5", mode="r")
    with ngser.Checkpoint(tmp_path / "a.h5") as ck:
        with pytest.raises(ngser.ArgumentError, match="finite"):
            ck.append(1, time=float("nan"))
        assert len(ck) == 0


def test_an_ordinary_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    ngser.save([1, 2], path)
    with pytest.raises(ngser.FormatError, match="not an ngser checkpoint"):
        ngser.Checkpoint(path, mode="r")


def test_a_stored_reference_outside_a_checkpoint_is_a_state_error() -> None:
    from ngser.serializers.stored import Stored

    with pytest.raises(ngser.StateError, match="through ngser.Checkpoint"):
        ngser.loads(ngser.dumps([Stored(0)]))


def _damage(path: Path, dataset: str, index: Any, value: Any) -> None:
    with h5py.File(path, "r+") as f:
        f[f"/ngser/checkpoint/{dataset}"][index] = value


@pytest.mark.parametrize(
    ("dataset", "index", "value", "match"),
    [
        ("data", slice(40, 48), 7, "fails its CRC32"),
        ("segments", (0, 0), 10**12, "outside the data"),
        ("steps", 1, 10**6, "does not exist"),
        ("deps", 0, 5, "not before it"),
        ("commits", slice(None), 3, "no valid commit"),
    ],
)
def test_damaged_checkpoints_end_in_format_errors(
    tmp_path: Path, registry: Registry, dataset: str, index: Any, value: Any, match: str
) -> None:
    path = tmp_path / "run.h5"
    with ngser.Checkpoint(path, registry=registry) as ck:
        grid = Grid(100)
        ck.append(Field(grid, np.zeros(3)))
        ck.append(Field(grid, np.ones(3)))
    _damage(path, dataset, index, value)
    with pytest.raises(ngser.FormatError, match=match), ngser.Checkpoint(path, mode="r", registry=registry) as ck:
        ck.load(0)
        ck.load(1)


_WRITER = """
import sys, numpy as np, ngser
path, start = sys.argv[1], int(sys.argv[2])
with ngser.Checkpoint(path, keep=int(sys.argv[3]) or None) as ck:
    for n in range(start, start + 10_000):
        ck.append({"n": n, "values": np.full(200_000, float(n))}, time=float(n))
        print(n, flush=True)
"""


@pytest.mark.parametrize("keep", [0, 4], ids=["all steps", "keep=4"])
def test_appends_killed_at_random_moments_lose_nothing_committed(tmp_path: Path, keep: int) -> None:
    """SIGKILL a writer at random moments, again and again: every step it reported done loads,
    and the next writer appends where the last commit ended."""
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(_WRITER))
    path = tmp_path / "run.h5"
    rng = random.Random(20261203 + keep)
    done = -1
    kills = int(os.environ.get("NGSER_KILLS", "12"))
    for _ in range(kills):
        child = subprocess.Popen(
            [sys.executable, str(script), str(path), str(done + 1), str(keep)], stdout=subprocess.PIPE, text=True
        )
        time.sleep(rng.uniform(0.3, 1.5))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        reported = [int(line) for line in out.split()]
        if reported:
            done = reported[-1]
        assert verify_checkpoint(str(path)).startswith("OK")  # what `ngser verify` checks
        with ngser.Checkpoint(path, mode="r") as ck:
            steps = len(ck)
            last = ck.load(-1) if steps else None
            assert last is None or last["n"] >= done  # a step reported done is committed
            for i in range(steps):
                step = ck.load(i)
                assert np.array_equal(step["values"], np.full(200_000, float(step["n"])))
            done = last["n"] if last is not None else done
    with ngser.Checkpoint(path, mode="r") as ck:
        assert len(ck) >= 1 and (keep == 0 or len(ck) <= keep)
        if keep == 0:
            assert [ck.load(i)["n"] for i in range(len(ck))] == list(range(len(ck)))


def test_info_and_verify_describe_the_steps(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "run.h5"
    with ngser.Checkpoint(path, keep=2, registry=registry) as ck:
        for n in range(4):
            ck.append(Field(Grid(5), np.zeros(3)), time=n / 4)
    text = describe_checkpoint(str(path))
    assert "2 kept of 4 appended (the first 2 dropped)" in text and "      0        0.5" in text
    out = subprocess.run([sys.executable, "-m", "ngser", "verify", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "every checksum matches" in out.stdout
    _damage(path, "data", slice(0, None), 0)
    out = subprocess.run([sys.executable, "-m", "ngser", "verify", str(path)], capture_output=True, text=True)
    assert out.returncode == 1 and "FAILED" in out.stdout


def test_a_step_of_more_buffers_than_one_write_takes_comes_back(tmp_path: Path) -> None:
    """A segment is written from its arrays' memory with pwritev, which takes at most 1024 buffers
    per call: a step of 1,500 arrays (3,001 buffers) must be written whole."""
    path = tmp_path / "many.h5"
    arrays = {f"a{i}": np.full(i % 7 + 1, i, dtype=np.int32 if i % 2 else np.float64) for i in range(1500)}
    with ngser.Checkpoint(path) as ck:
        ck.append(arrays, time=0.0)
        ck.append({"again": arrays["a3"]}, time=1.0)
    assert verify_checkpoint(str(path)).startswith("OK")
    with ngser.Checkpoint(path, mode="r") as ck:
        loaded = ck.load(0)
        assert loaded.keys() == arrays.keys()
        assert all(np.array_equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in arrays.items())
        assert np.array_equal(ck.load(1)["again"], arrays["a3"])


@pytest.mark.parametrize(
    "obj",
    [
        {"a": np.arange(10**6), "b": np.ones(7), "c": [1, 2]},
        {"x": 1},
        [np.zeros(0), np.arange(5.0)],
        {f"k{i}": np.full(i + 1, i) for i in range(3000)},
    ],
    ids=["big and small", "no arrays", "empty array", "3000 arrays"],
)
def test_a_planned_msgpack_file_is_a_valid_file_with_its_crc(obj: Any) -> None:
    """MsgpackBackend.plan lays a file out before the arrays' CRCs are known (checkpoints write
    the arrays meanwhile): the bytes it describes read back, and its CRC32 is theirs."""
    backend = MsgpackBackend()
    graph = ngser.encode(obj)
    plan = backend.plan(graph)
    buffer = bytearray(plan.length)
    run = b"".join(memoryview(p).cast("B").tobytes() for p in plan.data)
    buffer[plan.data_at : plan.data_at + len(run)] = run
    done = plan.finish()
    assert done is not None
    head, crc = done
    buffer[: len(head)] = head
    assert zlib.crc32(buffer) == crc
    pieces, length, crc = backend.pieces(graph)
    flat = b"".join(memoryview(p).cast("B").tobytes() for p in pieces)
    assert len(flat) == length <= plan.length and zlib.crc32(flat) == crc and flat == backend.write_bytes(graph)
    for data in (bytes(buffer), flat):
        back = ngser.decode(backend.read_bytes(data))
        assert ngser.dumps(back, format="msgpack") == ngser.dumps(obj, format="msgpack")


def test_a_step_whose_plan_fits_no_head_is_written_plainly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When no head fits a planned segment (PlannedFile.finish gives None), the append writes the
    plain layout in the planned room instead."""
    monkeypatch.setattr(PlannedFile, "finish", lambda self: None)
    path = tmp_path / "plain.h5"
    with ngser.Checkpoint(path) as ck:
        for n in range(3):
            ck.append({"n": n, "values": np.full(300_000, float(n))}, time=float(n))
    assert verify_checkpoint(str(path)).startswith("OK")
    with ngser.Checkpoint(path, mode="r") as ck:
        assert [float(ck.load(i)["values"][-1]) for i in range(3)] == [0.0, 1.0, 2.0]
