"""Hostile inputs: each is an NgserError, runs nothing and allocates nothing large.

"Runs nothing" is proven with a sentinel file that the payload would create (control tests show
that the same payload does create it when loaded with ``trusted=True``); "allocates nothing large"
by loading in a subprocess and reading its peak resident size (``ru_maxrss``; on Linux
``VmHWM``, since ``ru_maxrss`` includes what the parent process had when it forked the probe).
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ngser
from helpers import EXTENSION, msgpack_file
from ngser.backends import available
from ngser.backends._codec import pack_value_document
from ngser.backends.msgpack_format import MAGIC, PRELUDE
from ngser.backends.pickle_format import TAG
from ngser.graph import FORMAT_VERSION, ArrayNode, Graph, ObjectNode, Ref

FORMATS = available()


class Evil:
    """Reduces to ``os.system(command)``: unpickling it runs the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> Any:
        return (os.system, (self.command,))


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    return tmp_path / "PAYLOAD_RAN"


def _touch(path: Path) -> str:
    return f"touch '{path}'"


_HEADER = {"ngser": ngser.__version__, "writers": {}}


def _ngser_pickle(inner: bytes, arrays: list[Any] | None = None) -> bytes:
    """A pickle document in ngser's layout around a given graph pickle (with a valid checksum)."""
    return pickle.dumps((TAG, FORMAT_VERSION, inner, zlib.crc32(inner), arrays or []), protocol=5)


# -- pickles naming code -----------------------------------------------------------------------
def test_plain_pickle_reducing_to_os_system(tmp_path: Path, sentinel: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Evil(_touch(sentinel)), protocol=4))
    for load in (lambda: ngser.load(path), lambda: ngser.loads(path.read_bytes()), lambda: ngser.read_graph(path)):
        with pytest.raises(ngser.UnsafeLoadError, match=r"posix\.system.*Nothing was run") as info:
            load()
        assert str(path) in str(info.value) or "<bytes>" in str(info.value)
        assert not sentinel.exists()
    assert ngser.load(path, trusted=True) == 0  # control: trusted, the payload runs
    assert sentinel.exists()


def test_ngser_pickle_with_a_foreign_global_inside(sentinel: Path) -> None:
    data = _ngser_pickle(pack_value_document([_HEADER, None, [], []]), [Evil(_touch(sentinel))])
    with pytest.raises(ngser.UnsafeLoadError, match=r"posix\.system"):
        ngser.loads(data)
    assert not sentinel.exists()
    with pytest.raises(ngser.NgserError):  # trusted: the payload runs, then the damaged document is refused
        ngser.loads(data, trusted=True)
    assert sentinel.exists()


def test_ngser_pickle_with_a_pickle_as_its_graph_runs_nothing(sentinel: Path) -> None:
    """The graph inside is never unpickled, not even with trusted=True: a pickle there is damage."""
    data = _ngser_pickle(pickle.dumps(Evil(_touch(sentinel)), protocol=5))
    for trusted in (False, True):
        with pytest.raises(ngser.FormatError, match="graph"):
            ngser.loads(data, trusted=trusted)
    assert not sentinel.exists()


@pytest.mark.parametrize("global_name", [b"builtins\neval", b"ngser.shim\n_REBUILD", b"ngser.api\nload"])
def test_pickle_naming_any_other_global_is_refused(global_name: bytes) -> None:
    data = b"\x80\x02c" + global_name + b"\n)R."
    with pytest.raises(ngser.UnsafeLoadError, match=global_name.split(b"\n")[1].decode()):
        ngser.loads(data)


# -- cloudpickle nodes -------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_cloudpickle_nodes_need_trusted(fmt: str, tmp_path: Path, sentinel: Path) -> None:
    path = tmp_path / f"cp{EXTENSION[fmt]}"
    with pytest.raises(ngser.UnsupportedTypeError, match='fallback="cloudpickle"'):
        ngser.save({"f": Evil("true")}, path)
    assert not path.exists()
    ngser.save({"evil": Evil(_touch(sentinel)), "square": lambda x: x * x, "n": 1}, path, fallback="cloudpickle")
    assert not sentinel.exists()  # saving ran nothing
    with pytest.raises(ngser.UnsafeLoadError, match=r"'ngser\.cloudpickle' node.*trusted=True"):
        ngser.load(path)
    assert not sentinel.exists()
    out = ngser.load(path, trusted=True)  # control
    assert sentinel.exists() and out["evil"] == 0 and out["square"](7) == 49


def test_cloudpickle_fallback_on_dumps() -> None:
    data = ngser.dumps([len, lambda: 3], fallback="cloudpickle")
    with pytest.raises(ngser.UnsafeLoadError):
        ngser.loads(data)
    assert ngser.loads(data, trusted=True)[1]() == 3
    with pytest.raises(ngser.UnsupportedTypeError):
        ngser.dumps(lambda: 3)


# -- hostile graphs, written by every backend --------------------------------------------------
EVIL_MODULE = "ngser_evil_mod_q"


@pytest.fixture
def evil_module(tmp_path: Path, sentinel: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module that creates the sentinel when imported."""
    (tmp_path / f"{EVIL_MODULE}.py").write_text(
        f"open({str(sentinel)!r}, 'w').close()\nclass Thing:\n    pass\nsystem = Thing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return EVIL_MODULE


def _write(fmt: str, tmp_path: Path, root: Any, nodes: list[ObjectNode], arrays: list[ArrayNode] = ()) -> Path:
    path = tmp_path / f"hostile{EXTENSION[fmt]}"
    graph = Graph(root, list(nodes), list(arrays), {node.name: node.version for node in nodes}, {"ngser": "0"})
    ngser.write_graph(graph, path)
    return path


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "name",
    [f"{EVIL_MODULE}.Thing", f"{EVIL_MODULE}:Thing", f"{EVIL_MODULE}.system", "os.system", "builtins.eval", "ngsolve"],
)
def test_graph_naming_unregistered_types_or_import_paths(
    fmt: str, name: str, tmp_path: Path, sentinel: Path, evil_module: str
) -> None:
    path = _write(fmt, tmp_path, Ref(0), [ObjectNode(0, name, 1, {"cmd": _touch(sentinel)})])
    with pytest.raises(ngser.UnknownTypeError, match=f"{name!r}.*node 0") as info:
        ngser.load(path)
    assert str(path) in str(info.value)
    assert not sentinel.exists() and evil_module not in sys.modules
    raw = ngser.load(path, unknown="raw")  # inspectable without building anything
    assert isinstance(raw, ngser.RawNode) and raw.name == name and not sentinel.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_forged_cloudpickle_node(fmt: str, tmp_path: Path, sentinel: Path) -> None:
    state = {"type": "x.Y", "pickle": pickle.dumps(Evil(_touch(sentinel)))}
    path = _write(fmt, tmp_path, [Ref(0)], [ObjectNode(0, "ngser.cloudpickle", 1, state)])
    with pytest.raises(ngser.UnsafeLoadError, match="cloudpickle"):
        ngser.load(path)
    assert not sentinel.exists()
    assert ngser.load(path, trusted=True) == [0] and sentinel.exists()  # control


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("root", "nodes", "message"),
    [
        (Ref(99), [], "id 99, which is not in the file"),
        ([Ref(0)], [ObjectNode(0, "builtins.range", 1, (0, Ref(7), 1))], "id 7"),
        ({"a": Ref(2**40)}, [], "not in the file"),
        (
            Ref(0),
            [ObjectNode(0, "builtins.bytearray", 1, b"x"), ObjectNode(0, "builtins.bytearray", 1, b"y")],
            "twice|two",
        ),
    ],
)
def test_ids_pointing_nowhere(fmt: str, tmp_path: Path, root: Any, nodes: list[ObjectNode], message: str) -> None:
    path = _write(fmt, tmp_path, root, nodes)
    with pytest.raises(ngser.FormatError, match=message):
        ngser.load(path)


# -- declared sizes far larger than the file: checked in a subprocess's peak memory -------------
PROBE = """
import resource, sys
import ngser
try:
    out = ngser.load(sys.argv[1])
    result = "loaded"
except ngser.NgserError as exc:
    result = type(exc).__name__
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
try:  # Linux: ru_maxrss also counts the parent's memory inherited across fork+exec; VmHWM is this process's own
    peak = int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]) // 1024
except (OSError, StopIteration):
    pass
print(result, peak)
"""

#: Peak resident size allowed for a probe that refuses a file (Python + numpy + ngser is ~40-60 MiB).
MAX_RSS_MIB = 150


def _probe(path: Path) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, path], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    result, rss = out.stdout.split()
    return result, int(rss)


def _msgpack_declaring(nbytes: int) -> bytes:
    doc = pack_value_document(
        {
            "format": FORMAT_VERSION,
            "ngser": "0",
            "writers": {},
            "root": Ref(0),
            "nodes": [],
            "arrays": [[0, "|u1", [nbytes], False, 0, nbytes, 0, "huge"]],
        }
    )
    return msgpack_file(doc, bytes(64))


def _pickle_opcode_declaring(opcode: bytes, nbytes: int) -> bytes:
    return b"\x80\x05" + opcode + struct.pack("<Q", nbytes) + b"tiny"


def _pickle_array_declaring(nbytes: int) -> bytes:
    entry = [0, "|u1", [nbytes], False, 0, "huge"]
    inner = pack_value_document([_HEADER, Ref(0), [], [entry]])
    return _ngser_pickle(inner, [pickle.PickleBuffer(b"tiny")])


HUGE = 10**12

HOSTILE_SIZES = {
    "msgpack 10^12-byte array": ("msgpack", lambda: _msgpack_declaring(HUGE), "truncated"),
    "msgpack 8 GiB array": ("msgpack", lambda: _msgpack_declaring(8 << 30), "truncated"),
    "msgpack 10^12-byte graph document": (
        "msgpack",
        lambda: PRELUDE.pack(MAGIC, HUGE, 0, 0) + b"\x80" * 32,
        "truncated",
    ),
    "pickle BYTEARRAY8": ("pickle", lambda: _pickle_opcode_declaring(b"\x96", HUGE), "declares 1000000000000 bytes"),
    "pickle BINBYTES8": ("pickle", lambda: _pickle_opcode_declaring(b"\x8e", HUGE), "declares 1000000000000 bytes"),
    "pickle BINUNICODE8": ("pickle", lambda: _pickle_opcode_declaring(b"\x8d", HUGE), "truncated"),
    "pickle array shape": ("pickle", lambda: _pickle_array_declaring(HUGE), "do not hold"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SIZES))
def test_declared_sizes_larger_than_the_file(case: str, tmp_path: Path) -> None:
    fmt, make, message = HOSTILE_SIZES[case]
    if fmt not in FORMATS:
        pytest.skip(f"no {fmt} backend")
    data = make()
    with pytest.raises(ngser.FormatError, match=message):
        ngser.loads(data)
    path = tmp_path / f"huge{EXTENSION[fmt]}"
    path.write_bytes(data)
    result, rss = _probe(path)
    assert result == "FormatError"
    print(f"{case}: peak {rss} MiB")
    assert rss < MAX_RSS_MIB, f"{case}: peak resident size {rss} MiB"


def test_the_memory_probe_sees_a_real_large_load(tmp_path: Path) -> None:
    """Control: the probe's peak size does grow when a file really holds a large array."""
    path = tmp_path / "big.msgpack"
    ngser.save(np.ones(200 << 20, np.uint8), path)
    result, rss = _probe(path)
    assert result == "loaded" and rss > 200


def test_truncated_pickle_stream_reads_nothing_past_its_end() -> None:
    data = io.BytesIO(ngser.dumps({"a": np.arange(1000.0)}, format="pickle")).getvalue()
    for cut in (3, len(data) // 2, len(data) - 1):
        with pytest.raises(ngser.FormatError):
            ngser.loads(data[:cut])


# -- HDF5 built with raw h5py (only when the HDF5 backend exists) -------------------------------
def _hdf5_replacing(path: Path, name: str, shape: tuple[int, ...], dtype: str) -> None:
    """Replace dataset ``name`` by a chunked one that declares ``shape`` but stores no chunk."""
    import h5py

    with h5py.File(path, "r+") as file:
        del file[name]
        file.create_dataset(name, shape=shape, dtype=dtype, chunks=(1 << 16,) + (1,) * (len(shape) - 1))


@pytest.mark.skipif("hdf5" not in FORMATS, reason="no HDF5 backend")
@pytest.mark.parametrize(
    ("dataset", "shape", "dtype"),
    [("u", (HUGE // 8,), "<f8"), ("ngser/graph", (HUGE,), "|u1"), ("ngser/nodes/id", (HUGE,), "<i8")],
)
def test_hdf5_datasets_declaring_huge_sizes(tmp_path: Path, dataset: str, shape: tuple[int, ...], dtype: str) -> None:
    path = tmp_path / "huge.h5"
    ngser.save({"u": np.arange(10000.0)}, path)
    _hdf5_replacing(path, dataset, shape, dtype)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ngser.FormatError):
        ngser.load(path)
    result, rss = _probe(path)
    assert result == "FormatError" and rss < MAX_RSS_MIB, (dataset, result, rss)


@pytest.mark.skipif("hdf5" not in FORMATS, reason="no HDF5 backend")
def test_hdf5_attribute_naming_code_is_never_evaluated(tmp_path: Path, sentinel: Path) -> None:
    import h5py

    path = tmp_path / "attrs.h5"
    ngser.save({"u": 1}, path)
    with h5py.File(path, "r+") as file:
        file["ngser"].attrs["writers"] = f'__import__("os").system("{_touch(sentinel)}")'
    with pytest.raises(ngser.FormatError):
        ngser.load(path)
    assert not sentinel.exists()
