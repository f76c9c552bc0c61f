"""Hostile HDF5 files with every checksum correct: refused before any data is read.

Anyone can write a file whose checksums all hold, with ngser's own writer or with h5py. Each
test here starts from a real file written by :func:`ngser.save`, edits it with h5py into
something ngser's writer never produces (a link out of the file, external storage, a virtual
dataset, storage that was never written or expands far beyond the file, one payload behind
several arrays, a header that disagrees with the node table) and, where the edit touches the
array table, rewrites the graph document and ``/ngser@crc32`` so the checksums are valid again.
Loading must raise an :class:`ngser.NgserError` that names what is wrong, and no byte from
outside the file may come back. Loads that could hang or allocate a lot run in a subprocess
with a timeout and an address-space limit (``RLIMIT_AS``).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ngser
from ngser.backends import available

pytestmark = pytest.mark.skipif("hdf5" not in available(), reason="no HDF5 backend")
h5py = pytest.importorskip("h5py")

from fixture_types import REGISTRY, Field, Point  # noqa: E402
from ngser.backends import hdf5_layout as layout  # noqa: E402
from ngser.backends._checksum import crc32_combine  # noqa: E402
from ngser.backends._codec import pack_value_document, unpack_value_document  # noqa: E402

#: Bytes that live only outside the files under test: they must never come back from a load.
SECRET = b"NGSER-SECRET-FROM-OUTSIDE-FILE!!"
SIZE = 8192  # bytes of each test array: above INLINE_LIMIT, so each gets a dataset of its own
CRC, LOCATION, SHAPE, NBYTES = (layout.ROW.index(name) for name in ("crc", "location", "shape", "nbytes"))
#: Address space of a probe process: a refused load needs ~100 MiB; the hostile files ask for GiBs.
AS_LIMIT = 1536 << 20
#: Peak resident size allowed for a probe that refuses a file.
MAX_RSS_MIB = 200


def _secret(nbytes: int = SIZE) -> np.ndarray:
    return np.frombuffer(SECRET * (nbytes // len(SECRET)), np.uint8).copy()


def _plain(nbytes: int = SIZE, value: int = 7) -> np.ndarray:
    return np.full(nbytes, value, np.uint8)


def _crc_of_zeros(nbytes: int) -> int:
    """CRC32 of ``nbytes`` zero bytes (a multiple of 1 MiB), without making them."""
    block, crc, done = 1 << 20, 0, 0
    piece, size = zlib.crc32(bytes(1 << 20)), block
    count = nbytes // block
    while count:
        if count & 1:
            crc, done = crc32_combine(crc, piece, size), done + size
        piece, size, count = crc32_combine(piece, piece, size), size * 2, count >> 1
    assert done == nbytes
    return crc


def _no_secret(exc: BaseException) -> None:
    assert SECRET.decode() not in str(exc) and SECRET[:8].decode() not in str(exc)


# -- editing real files ----------------------------------------------------------------------------
def _rewrite(path: Path, edit: Callable[[list[list[Any]]], None]) -> None:
    """Edit the array table of the ngser file ``path`` in place and make ``/ngser@crc32`` valid again."""
    with h5py.File(path, "r+") as file:
        body = unpack_value_document(file["ngser/graph"][...].tobytes(), str(path))
        edit(body["arrays"])
        doc = pack_value_document(body)
        del file["ngser/graph"]
        file.create_dataset("ngser/graph", data=np.frombuffer(doc, np.uint8), track_times=False)
        columns = [file[f"ngser/nodes/{name}"][...] for name in ("id", "type", "version")]
        names = [name.decode() for name in file["ngser/types"][...].tolist()]
        file["ngser"].attrs["crc32"] = np.uint32(layout.graph_crc(doc, *columns, names))


def _row(rows: list[list[Any]], location: str | int) -> list[Any]:
    return next(row for row in rows if row[LOCATION] == location)


def _claim(path: Path, location: str, data: np.ndarray) -> None:
    """Make the table's entry at ``location`` claim ``data`` (uint8): its shape and checksum."""

    def edit(rows: list[list[Any]]) -> None:
        row = _row(rows, location)
        row[SHAPE], row[NBYTES], row[CRC] = [data.size], data.size, zlib.crc32(data)

    _rewrite(path, edit)


@pytest.fixture
def packing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small arrays packed into /ngser/packed, as files with more than SMALL_DATASETS small arrays have them."""
    from ngser.backends import hdf5_format

    monkeypatch.setattr(hdf5_format, "SMALL_DATASETS", 0)


def _saved(path: Path, obj: Any = None, **options: Any) -> Path:
    ngser.save({"a": _plain()} if obj is None else obj, path, **options)
    return path


def _replace(path: Path, name: str, **create: Any) -> None:
    """Replace the dataset ``name`` by a new one made with ``create_dataset(**create)``."""
    with h5py.File(path, "r+") as file:
        del file[name]
        file.create_dataset(name, track_times=False, **create)


def _link(path: Path, name: str, link: Any) -> None:
    with h5py.File(path, "r+") as file:
        del file[name]
        file[name] = link


def _refused(path: Path, match: str, error: type[BaseException] = ngser.FormatError) -> None:
    """Every way of reading ``path`` (load, read_graph, open, loads of its bytes) is refused
    with ``error`` and ``match``, naming the file; nothing from outside the file comes back."""
    reads: list[tuple[Callable[[], Any], str]] = [
        (lambda: ngser.load(path), str(path)),
        (lambda: ngser.read_graph(path), str(path)),
        (lambda: ngser.open(path), str(path)),
        (lambda: ngser.loads(path.read_bytes()), "<bytes>"),
    ]
    for read, source in reads:
        with pytest.raises(error, match=match) as info:
            read()
        assert source in str(info.value)
        _no_secret(info.value)


# -- loads in a subprocess: a timeout and a memory limit ------------------------------------------
PROBE = r"""
import json, resource, sys
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import ngser
try:
    ngser.load(sys.argv[1])
    result, message = "loaded", ""
except ngser.NgserError as exc:
    result, message = type(exc).__name__, str(exc)
except MemoryError as exc:
    result, message = "MemoryError", str(exc)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
try:  # Linux: ru_maxrss counts what the parent had at fork; VmHWM is this process's own peak
    peak = int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]) // 1024
except (OSError, StopIteration):
    pass
print(json.dumps({"result": result, "message": message, "peak": peak}))
"""


def _probe(path: Path, timeout: float = 30) -> dict[str, Any]:
    """Load ``path`` in a fresh process with at most ``AS_LIMIT`` of address space; a load that
    does not finish in ``timeout`` seconds fails the test (the process is killed)."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(AS_LIMIT)], capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert SECRET[:8].decode() not in out.stdout
    return result


def _probe_refuses(path: Path, match: str) -> None:
    result = _probe(path)
    assert result["result"] == "FormatError", result
    assert match in result["message"] and str(path) in result["message"], result
    assert result["peak"] < MAX_RSS_MIB, result


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


# -- 1. nothing outside the file ------------------------------------------------------------------
def test_ngser_group_as_an_external_link(tmp_path: Path) -> None:
    """A shell whose /ngser is another file's: its whole graph (checksums valid) would load."""
    other = _saved(tmp_path / "other.h5", {"s": _secret(64)})
    path = _saved(tmp_path / "main.h5", {"x": 1})
    _link(path, "ngser", h5py.ExternalLink(str(other), "/ngser"))
    _refused(
        path, r": /ngser is an external link to .*other\.h5':'/ngser'; ngser writes only hard links and never follows"
    )


def test_group_on_the_way_as_an_external_link(tmp_path: Path) -> None:
    other = _saved(tmp_path / "other.h5", {"g": {"a": _secret()}})
    path = _saved(tmp_path / "main.h5", {"g": {"a": _plain()}})
    _claim(path, "/g/a", _secret())
    _link(path, "g", h5py.ExternalLink(str(other), "/g"))
    _refused(path, r"array node \d+ \(/g/a\): the group /g on its path is an external link")


def test_owner_group_on_the_way_as_an_external_link(tmp_path: Path) -> None:
    path = tmp_path / "main.h5"
    ngser.save({"f": {"field": Field(_plain(), Point(0.0, 1.0), "m")}}, path, registry=REGISTRY)
    other = tmp_path / "other.h5"
    ngser.save({"f": {"field": Field(_secret(), Point(0.0, 1.0), "m")}}, other, registry=REGISTRY)
    _claim(path, "/f/field/values", _secret())
    _link(path, "f/field", h5py.ExternalLink(str(other), "/f/field"))
    _refused(path, r"\(/f/field/values\): the group /f/field on its path is an external link")


def test_array_dataset_as_an_external_link(tmp_path: Path) -> None:
    other = _saved(tmp_path / "other.h5", {"a": _secret()})
    path = _saved(tmp_path / "main.h5")
    _claim(path, "/a", _secret())
    for target in (str(other), "other.h5"):  # absolute and relative
        _link(path, "a", h5py.ExternalLink(target, "/a"))
        _refused(path, r"\(/a\) is an external link")


def test_node_table_dataset_as_an_external_link(tmp_path: Path) -> None:
    """The other file holds the very same graph: the link alone is the damage."""
    other = _saved(tmp_path / "other.h5", {"x": [1, 2]})
    path = _saved(tmp_path / "main.h5", {"x": [1, 2]})
    _link(path, "ngser/graph", h5py.ExternalLink(str(other), "/ngser/graph"))
    _refused(path, r"/ngser/graph is an external link")
    path = _saved(tmp_path / "main2.h5", {"x": [1, 2]})
    _link(path, "ngser/nodes", h5py.ExternalLink(str(other), "/ngser/nodes"))
    _refused(path, r"/ngser/nodes/id: the group /ngser/nodes on its path is an external link")


@pytest.mark.parametrize("target", ["/b", "b"])
def test_array_dataset_as_a_soft_link(tmp_path: Path, target: str) -> None:
    path = _saved(tmp_path / "main.h5", {"a": _plain(), "b": _plain()})
    _link(path, "a", h5py.SoftLink(target))
    _refused(path, r"\(/a\) is a soft link")


def test_soft_link_leaving_the_ngser_objects(tmp_path: Path) -> None:
    path = _saved(tmp_path / "main.h5", {"x": 1})
    with h5py.File(path, "r+") as file:
        file.move("ngser", "elsewhere")
        file["ngser"] = h5py.SoftLink("/elsewhere")
    _refused(path, r"/ngser is a soft link")


@pytest.mark.parametrize("source", ["file", "fifo"])
def test_virtual_dataset(tmp_path: Path, source: str, fifo: Path) -> None:
    other = _saved(tmp_path / "other.h5", {"a": _secret()})
    path = _saved(tmp_path / "main.h5")
    _claim(path, "/a", _secret())
    with h5py.File(path, "r+") as file:
        del file["a"]
        vds = h5py.VirtualLayout(shape=(SIZE,), dtype=np.uint8)
        vds[:] = h5py.VirtualSource(str(other if source == "file" else fifo), "/a", shape=(SIZE,))
        file.create_virtual_dataset("a", vds)
        assert file["a"].is_virtual
    if source == "fifo":  # opening the FIFO would block: the check must come first
        _probe_refuses(path, "is a virtual dataset")
    else:
        _refused(path, r"array node \d+ \(/a\) is a virtual dataset")


def test_external_storage_in_another_file(tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(_secret().tobytes())
    path = _saved(tmp_path / "main.h5")
    _claim(path, "/a", _secret())
    _replace(path, "a", shape=(SIZE,), dtype=np.uint8, external=[(str(outside), 0, SIZE)])
    _refused(path, r"\(/a\) stores its data in 1 external file")


@pytest.mark.parametrize("dataset", ["a", "ngser/graph", "ngser/packed"])
def test_external_storage_in_a_fifo_does_not_block(tmp_path: Path, fifo: Path, dataset: str, packing: None) -> None:
    path = _saved(tmp_path / "main.h5", {"a": _plain(), "small": np.arange(3)})
    with h5py.File(path, "r") as file:
        shape = file[dataset].shape
    _replace(path, dataset, shape=shape, dtype=np.uint8, external=[(str(fifo), 0, int(np.prod(shape)))])
    _probe_refuses(path, "external file")


def _patch_address(path: Path, old: int, new: int, start: int = 0, end: int | None = None) -> None:
    """Replace the one 8-byte little-endian file address ``old`` in ``data[start:end]`` by ``new``."""
    data = bytearray(path.read_bytes())
    needle = struct.pack("<Q", old)
    at = data.find(needle, start, end)
    assert at >= 0 and data.find(needle, at + 1, end) < 0, "the address must appear once"
    data[at : at + 8] = struct.pack("<Q", new)
    path.write_bytes(bytes(data))


def test_contiguous_storage_outside_the_file(tmp_path: Path) -> None:
    """HDF5 2.0 itself refuses to open such a dataset; ngser's own check covers older HDF5."""
    path = _saved(tmp_path / "main.h5")
    with h5py.File(path, "r") as file:
        dataset = file["a"]
        offset, header = dataset.id.get_offset(), h5py.h5o.get_info(dataset.id).addr
    _patch_address(path, offset, path.stat().st_size - SIZE // 2, header, header + 256)  # its layout message
    _refused(path, r"array node 0 \(/a\): .*(lies outside the file|cannot be opened)")


def test_chunk_outside_the_file(tmp_path: Path) -> None:
    data = np.arange(200_000, dtype="<i8")
    path = _saved(tmp_path / "main.h5", {"a": data}, compression="gzip")
    with h5py.File(path, "r") as file:
        dataset = file["a"]
        assert dataset.id.get_num_chunks() > 1
        chunk = dataset.id.get_chunk_info(1)
    _patch_address(path, chunk.byte_offset, path.stat().st_size + (1 << 20))
    _refused(path, r"\(/a\): chunk 1 .* lies outside the file")


@pytest.mark.parametrize("location", ["/ngser/graph", "/ngser/nodes/id", "/" + "/".join(["g"] * 40), "a", "/"])
def test_array_location_inside_the_node_table_too_deep_or_relative(tmp_path: Path, location: str) -> None:
    path = _saved(tmp_path / "main.h5")
    _rewrite(path, lambda rows: rows[0].__setitem__(LOCATION, location))
    _refused(path, r"ngser stores array datasets at absolute paths outside /ngser, at most 33 names deep")


# -- 2. sizes out of proportion to the file ------------------------------------------------------
GIB3 = 3 << 30
GZIP: dict[str, Any] = {"compression": "gzip", "shuffle": True, "compression_opts": 4}


@pytest.mark.parametrize("storage", ["contiguous", "chunked"])
def test_never_written_dataset_of_3_gib(tmp_path: Path, storage: str) -> None:
    """A 6 KB file whose dataset of 3 GiB was never written: HDF5 would hand out fill values."""
    path = _saved(tmp_path / "main.h5")

    def edit(rows: list[list[Any]]) -> None:
        row = _row(rows, "/a")
        row[SHAPE], row[NBYTES], row[CRC] = [GIB3], GIB3, _crc_of_zeros(GIB3)

    _rewrite(path, edit)
    chunks = {"chunks": (1 << 20,)} if storage == "chunked" else {}
    _replace(path, "a", shape=(GIB3,), dtype=np.uint8, **chunks)
    assert path.stat().st_size < 100_000
    _refused(path, r"\(/a\): .*never written")
    _probe_refuses(path, "never written")


def test_gzip_of_zeros(tmp_path: Path) -> None:
    """256 MiB of zeros in about 256 KB: more than Limits().expansion (100) bytes per stored byte."""
    nbytes = 256 << 20
    path = _saved(tmp_path / "main.h5")

    def edit(rows: list[list[Any]]) -> None:
        row = _row(rows, "/a")
        row[SHAPE], row[NBYTES], row[CRC] = [nbytes], nbytes, _crc_of_zeros(nbytes)

    _rewrite(path, edit)
    with h5py.File(path, "r+") as file:
        del file["a"]
        dataset = file.create_dataset("a", shape=(nbytes,), dtype=np.uint8, chunks=(1 << 20,), **GZIP)
        for start in range(0, nbytes, 64 << 20):
            dataset[start : start + (64 << 20)] = 0
    assert path.stat().st_size < nbytes / 500
    _refused(path, r"\(/a\): .*times its storage.*limits=ngser\.Limits\(expansion=")
    _probe_refuses(path, "Limits(expansion=")
    out = ngser.load(path, limits=ngser.Limits(expansion=10_000))  # control: trusted, it loads
    assert out["a"].size == nbytes and not out["a"].any()


def test_one_byte_chunks(tmp_path: Path) -> None:
    data = (np.arange(20_000) % 251).astype(np.uint8)
    path = _saved(tmp_path / "main.h5", {"a": data})
    _replace(path, "a", data=data, chunks=(1,))
    _refused(path, r"\(/a\): .*chunks of 1 bytes")


def test_chunks_partly_written(tmp_path: Path) -> None:
    """Only the first chunk exists: the rest would be fill values, never stored."""
    nbytes = 64 << 20
    path = _saved(tmp_path / "main.h5")

    def edit(rows: list[list[Any]]) -> None:
        row = _row(rows, "/a")
        row[SHAPE], row[NBYTES], row[CRC] = [nbytes], nbytes, _crc_of_zeros(nbytes)

    _rewrite(path, edit)
    with h5py.File(path, "r+") as file:
        del file["a"]
        dataset = file.create_dataset("a", shape=(nbytes,), dtype=np.uint8, chunks=(1 << 20,))
        dataset[: 1 << 20] = 0
    _refused(path, r"\(/a\): .*(never written|1 of its 64 chunks)")


@pytest.mark.parametrize("pipeline", ["fletcher32", "scaleoffset", "bzip2 (id 307)"])
def test_filters_ngser_never_writes(tmp_path: Path, pipeline: str) -> None:
    data = np.arange(SIZE // 8, dtype="<i8")
    path = _saved(tmp_path / "main.h5", {"a": data})
    with h5py.File(path, "r+") as file:
        del file["a"]
        if pipeline == "bzip2 (id 307)":  # optional and unavailable: HDF5 stores the chunk unfiltered
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk((256,))
            dcpl.set_filter(307, h5py.h5z.FLAG_OPTIONAL, (9,))
            space = h5py.h5s.create_simple((data.size,))
            dsid = h5py.h5d.create(file.id, b"a", h5py.h5t.STD_I64LE, space, dcpl=dcpl)
            dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, data)
        else:
            file.create_dataset("a", data=data, chunks=(256,), **{pipeline: True if pipeline != "scaleoffset" else 0})
    _refused(path, r"\(/a\): .*filter")


def test_node_table_dataspace_far_larger_than_the_file(tmp_path: Path) -> None:
    path = _saved(tmp_path / "main.h5", {"x": [1]})
    _replace(path, "ngser/nodes/type", shape=(10**12,), dtype="<u4")
    _refused(path, r"/ngser/nodes/type: .*never written")
    _probe_refuses(path, "/ngser/nodes/type")


# -- 3. one payload, many arrays ----------------------------------------------------------------
def test_two_entries_naming_one_dataset(tmp_path: Path) -> None:
    path = _saved(tmp_path / "main.h5", {"a": _plain(), "b": _plain()})

    def edit(rows: list[list[Any]]) -> None:
        _row(rows, "/b")[LOCATION] = "/a"

    _rewrite(path, edit)
    _refused(path, r"array nodes \d+ and \d+ both name the dataset /a")


def test_two_paths_hard_linked_to_one_dataset(tmp_path: Path) -> None:
    path = _saved(tmp_path / "main.h5", {"a": _plain(), "b": _plain()})
    with h5py.File(path, "r+") as file:
        del file["b"]
        file["b"] = file["a"]  # a second hard link
    _refused(path, r"/b and /a are one dataset")


def test_two_datasets_sharing_their_storage(tmp_path: Path) -> None:
    """Two dataset objects whose headers point at the same bytes of the file (a forged address)."""
    path = _saved(tmp_path / "main.h5", {"a": _plain(), "b": _plain()})
    with h5py.File(path, "r") as file:
        first = file["a"].id.get_offset()
        second = file["b"]
        offset, header = second.id.get_offset(), h5py.h5o.get_info(second.id).addr
    _patch_address(path, offset, first, header, header + 1024)
    _refused(path, r"/a and /b share bytes .* of the file")


def test_array_hard_linked_to_the_node_table(tmp_path: Path, packing: None) -> None:
    path = _saved(tmp_path / "main.h5", {"a": _plain(), "small": np.arange(3)})
    with h5py.File(path, "r+") as file:
        packed = file["ngser/packed"][...]
        del file["a"]
        file["a"] = file["ngser/packed"]
    _claim(path, "/a", packed)
    _refused(path, r"/a and /ngser/packed are one dataset")


def test_overlapping_packed_arrays(tmp_path: Path, packing: None) -> None:
    path = _saved(tmp_path / "main.h5", {"a": np.arange(4.0), "b": np.arange(4.0)})

    def edit(rows: list[list[Any]]) -> None:
        rows[1][LOCATION] = rows[0][LOCATION]

    _rewrite(path, edit)
    _refused(path, r"overlap in /ngser/packed")


# -- 4. the header attributes -------------------------------------------------------------------
def _set_attr(path: Path, name: str, value: bytes) -> None:
    with h5py.File(path, "r+") as file:
        file["ngser"].attrs[name] = np.bytes_(value)


def test_writer_stores_a_header_checksum(tmp_path: Path) -> None:
    path = _saved(tmp_path / "main.h5", {"r": range(3)})
    with h5py.File(path, "r") as file:
        attrs = file["ngser"].attrs
        writers, version = bytes(attrs["writers"]), bytes(attrs["ngser"])
        assert int(attrs["header_crc32"]) == layout.header_crc(writers, version)
        assert int(attrs["header_crc32"]) == zlib.crc32(writers + b"\0" + version)


@pytest.mark.parametrize(("name", "old", "new"), [("writers", b": 1", b": 7"), ("ngser", b"0", b"9")])
def test_flipped_header_attribute(tmp_path: Path, name: str, old: bytes, new: bytes) -> None:
    path = _saved(tmp_path / "main.h5", {"r": range(3)})
    with h5py.File(path, "r") as file:
        value = bytes(file["ngser"].attrs[name])
    assert old in value
    _set_attr(path, name, value.replace(old, new, 1))
    _refused(path, r"/ngser@writers and /ngser@ngser are damaged \(checksum mismatch\)")


def test_files_without_a_header_checksum_still_load(tmp_path: Path) -> None:
    path = _saved(tmp_path / "main.h5", {"r": range(3), "a": _plain()})
    with h5py.File(path, "r+") as file:
        file["ngser"].attrs.pop("header_crc32", None)
    out = ngser.load(path)
    assert out["r"] == range(3) and (out["a"] == 7).all()


@pytest.mark.parametrize(
    ("writers", "match"),
    [
        (b"{}", r"names the type 'builtins.range', which /ngser@writers does not list"),
        (b'{"builtins.range": "1"}', r"/ngser@writers is damaged: the version of 'builtins.range' is not an integer"),
        (b'{"builtins.range": true}', r"the version of 'builtins.range' is not an integer"),
        (b"[1]", r"/ngser@writers is damaged"),
    ],
)
def test_writers_disagreeing_with_the_node_table(tmp_path: Path, writers: bytes, match: str) -> None:
    path = _saved(tmp_path / "main.h5", {"r": range(3)})
    with h5py.File(path, "r+") as file:
        file["ngser"].attrs.pop("header_crc32", None)  # as in files of earlier versions
    _set_attr(path, "writers", writers)
    _refused(path, match)


def test_variable_length_header_attribute_is_refused_unread(tmp_path: Path) -> None:
    path = _saved(tmp_path / "main.h5", {"r": range(3)})
    with h5py.File(path, "r+") as file:
        file["ngser"].attrs.pop("header_crc32", None)
        file["ngser"].attrs["writers"] = '{"builtins.range": 1}'  # h5py: a variable-length string
    _refused(path, r"/ngser@writers is a variable-length string")


# -- the checks cost no reads: a real file still loads, also lazily, also from bytes -------------
@pytest.mark.parametrize("options", [{}, {"compression": "gzip"}, {"compression": "lzf"}])
def test_real_files_still_load(tmp_path: Path, options: dict[str, Any]) -> None:
    field = Field(np.linspace(0.0, 1.0, 50_000), Point(0.0, 1.0), "m")
    obj = {"f": field, "a": np.arange(100_000).reshape(100, 1000), "s": np.arange(3), "e": np.zeros((0, 3))}
    path = tmp_path / "real.h5"
    ngser.save(obj, path, registry=REGISTRY, **options)
    for out in (ngser.load(path, registry=REGISTRY), ngser.loads(path.read_bytes(), registry=REGISTRY)):
        np.testing.assert_array_equal(out["f"].values, field.values)
        np.testing.assert_array_equal(out["a"], obj["a"])
    with ngser.open(path) as view:
        np.testing.assert_array_equal(view.array("ngser_fixtures.Field/values"), field.values)


def test_loads_while_h5py_holds_the_same_datasets_open(tmp_path: Path) -> None:
    """The checks open datasets as h5py does: a dataset the caller holds open (HDF5 shares one
    open file per process) does not clash with ngser's own open of it."""
    path = _saved(tmp_path / "main.h5", {"a": _plain(), "b": np.arange(1000.0)})
    with h5py.File(path, "r") as file:
        held = [file["a"], file["b"]]
        assert (ngser.load(path)["a"] == 7).all()
        with ngser.open(path) as view:
            np.testing.assert_array_equal(view.array(1), np.arange(1000.0))
            np.testing.assert_array_equal(held[1][...], np.arange(1000.0))


def test_the_checks_read_no_chunk(tmp_path: Path) -> None:
    """A lazy open checks every dataset, chunk index included, but decompresses nothing: a
    damaged chunk is found only when its array is read."""
    data = np.arange(200_000, dtype="<i8")
    path = _saved(tmp_path / "main.h5", {"a": data}, compression="gzip")
    with h5py.File(path, "r") as file:
        chunk = file["a"].id.get_chunk_info(2)
    damaged = bytearray(path.read_bytes())
    damaged[chunk.byte_offset : chunk.byte_offset + chunk.size] = bytes(chunk.size)
    path.write_bytes(bytes(damaged))
    with ngser.open(path) as view:
        assert view.arrays()[0].shape == data.shape
        with pytest.raises(ngser.FormatError, match=r"array node 0 \(/a\)"):
            view.array(0)
