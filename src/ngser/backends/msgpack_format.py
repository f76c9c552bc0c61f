"""The msgpack format: a small prelude, the graph as one msgpack document, then raw arrays.

Layout (all integers little-endian; see ``docs/format.md``)::

    offset 0   8 bytes   magic b"\\x89NGSER\\x1a\\n"
    offset 8   8 bytes   uint64 G: length of the document
    offset 16  4 bytes   uint32 crc32 of the document
    offset 20  4 bytes   uint32 reserved, 0
    offset 24  G bytes   the document (a msgpack map, in the value codec of :mod:`._codec`)
    D = 24 + G rounded up to 64: the data section; array i starts at D + offset_i

Array payloads are written straight from the arrays' memory (no msgpack buffer in
between), each 64-byte aligned, and read straight into their own buffers.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from typing import IO, Any

from ..errors import FormatError
from ..graph import ArrayNode, Graph, format_of
from . import DEFAULT_LIMITS, Limits, PathLike, StreamBackend
from ._arrays import ArrayEntry, LazyArray, check_disjoint, payload_reader, read_payload
from ._checksum import crc32_async, crc32_combine
from ._codec import check_format, checked_flat, pack_value_document, unpack_value_document
from ._columns import pack_root, pack_tables, unpack_tables

__all__ = ["MsgpackBackend", "PlannedFile", "MAGIC", "ALIGN", "PRELUDE", "ROW"]

MAGIC = b"\x89NGSER\x1a\n"
#: magic, document length, document CRC32, reserved
PRELUDE = struct.Struct("<8sQII")
ALIGN = 64
#: The array table's row layout (format version 1). ``location``: offset in the data section.
ROW = ("id", "dtype", "shape", "fortran", "location", "nbytes", "crc", "label")


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


class MsgpackBackend(StreamBackend):
    """The ``"msgpack"`` format (``.msgpack``, ``.mpk``)."""

    name = "msgpack"
    extensions = (".msgpack", ".mpk")
    magic = MAGIC

    def write_stream(self, graph: Graph, stream: IO[bytes], **options: Any) -> None:
        self.check_options(options)
        for piece in self.pieces(graph, crc=False)[0]:
            stream.write(piece)

    def pieces(self, graph: Graph, *, crc: bool = True) -> tuple[list[Any], int, int]:
        """The file's bytes as a list of buffers (the arrays' own memory, not copied), their
        total length and, with ``crc``, their CRC32 (``zlib.crc32`` of the joined bytes,
        combined from the arrays' CRCs: every byte is checksummed once; else 0). For writers
        that write where they choose (``os.pwritev``), as checkpoints do."""
        entries, views, jobs = _entries_of(graph)
        for entry, job in zip(entries, jobs):
            entry.crc = job.result()
        head = _head(graph, entries, 0)
        data, length = _data_run(entries, views)
        start = _align(len(head))
        gap = bytes(start - len(head))
        total = _with_data_crc(zlib.crc32(gap, zlib.crc32(head)), entries) if crc else 0
        return [head, gap, *data], start + length, total

    def plan(self, graph: Graph) -> PlannedFile:
        """The file laid out before the arrays' checksums are known, so that a writer can write
        the arrays (:attr:`PlannedFile.data`, at :attr:`PlannedFile.data_at`) while their CRC32s
        are computed on other threads, and the head after (:meth:`PlannedFile.finish`). The data
        section starts where the longest possible head would end; array locations are shifted
        to match the actual head."""
        entries, views, jobs = _entries_of(graph)
        for entry in entries:
            entry.crc = 0xFFFFFFFF  # the longest encodings a CRC32 and a location can have
        longest = _head(graph, entries, 1 << 40)
        data, length = _data_run(entries, views)
        return PlannedFile(graph, entries, jobs, data, _align(len(longest)), length)

    def read(self, stream: IO[bytes], size: int, source: str, limits: Limits = DEFAULT_LIMITS) -> Graph:
        doc, start = _read_document(stream, size, source)
        read = []  # each array's checksum runs on the pool while the next one is read
        for entry in _entries(doc, size - start, source):
            buffer = read_payload(stream, start, entry)
            read.append((entry, buffer, crc32_async(buffer)))
        arrays = [ArrayNode(entry.id, entry.array(buffer, job.result()), entry.label) for entry, buffer, job in read]
        return _graph(doc, arrays, source)

    def open_lazy(self, path: PathLike, *, limits: Limits = DEFAULT_LIMITS) -> tuple[Graph, Callable[[], None]]:
        source = os.fspath(path)
        with open(source, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            doc, start = _read_document(stream, size, source)
        read = payload_reader(source, start)
        arrays = [ArrayNode(e.id, LazyArray(e, read), e.label) for e in _entries(doc, size - start, source)]
        return _graph(doc, arrays, source), lambda: None


class PlannedFile:
    """A msgpack file of :meth:`MsgpackBackend.plan`: write :attr:`data` (buffers, one run) at
    :attr:`data_at`, then ``head, crc = finish()`` at 0; :attr:`length` bytes in all."""

    def __init__(
        self, graph: Graph, entries: list[ArrayEntry], jobs: list[Any], data: list[Any], data_at: int, data_length: int
    ) -> None:
        self._graph, self._entries, self._jobs = graph, entries, jobs
        self.data, self.data_at = data, data_at
        self.length = data_at + data_length

    def finish(self) -> tuple[bytes, int] | None:
        """The head (prelude, document, zeros up to :attr:`data_at`) and the CRC32 of the whole
        file; None in the rare case that no head fits (then write :meth:`MsgpackBackend.pieces`)."""
        for entry, job in zip(self._entries, self._jobs):
            entry.crc = job.result()
        shift = 0
        for _ in range(4):  # the locations' encodings may change the head's length: a few rounds
            head = _head(self._graph, self._entries, shift)
            if _align(len(head)) > self.data_at:
                return None
            if self.data_at - _align(len(head)) == shift:
                head += bytes(self.data_at - len(head))
                return head, _with_data_crc(zlib.crc32(head), self._entries)
            shift = self.data_at - _align(len(head))
        return None

    def sequential(self) -> tuple[list[Any], int, int]:
        """:meth:`MsgpackBackend.pieces` of the same graph (for when :meth:`finish` gives None):
        never longer than :attr:`length`."""
        return MsgpackBackend().pieces(self._graph)


def _entries_of(graph: Graph) -> tuple[list[ArrayEntry], list[memoryview], list[Any]]:
    """The array table (locations in the data section) and each array's bytes, their CRC32s
    started on the pool."""
    entries, views, jobs = [], [], []
    offset = 0
    for array in graph.arrays:
        entry, view = ArrayEntry.of(array.id, array.load(), array.label)
        entry.location = offset
        jobs.append(crc32_async(view))
        entries.append(entry)
        views.append(view)
        offset = _align(offset + view.nbytes)
    return entries, views, jobs


def _head(graph: Graph, entries: list[ArrayEntry], shift: int) -> bytes:
    """Prelude and document, the locations shifted by ``shift``."""
    rows = []
    for entry in entries:
        row = entry.row(ROW)
        row[ROW.index("location")] = int(entry.location) + shift
        rows.append(row)
    doc = pack_value_document(
        {
            "format": format_of(graph),
            "ngser": graph.meta.get("ngser", ""),
            "writers": graph.writers,
            "root": pack_root(graph),
            "nodes": graph.flat_nodes,
            "arrays": rows,
            **({"tables": pack_tables(graph.tables)} if graph.tables else {}),
        }
    )
    return PRELUDE.pack(MAGIC, len(doc), zlib.crc32(doc), 0) + doc


def _data_run(entries: list[ArrayEntry], views: list[memoryview]) -> tuple[list[Any], int]:
    """The data section as buffers (the arrays and the zeros between them) and its length."""
    run: list[Any] = []
    at = 0
    for entry, view in zip(entries, views):
        if int(entry.location) > at:
            run.append(bytes(int(entry.location) - at))
        run.append(view)
        at = int(entry.location) + view.nbytes
    return run, at


def _with_data_crc(crc: int, entries: list[ArrayEntry]) -> int:
    """``crc`` (the CRC32 of the bytes before the data section) carried on over the data section
    of :func:`_data_run`: the zeros between the arrays, and the arrays' own CRC32s combined in
    (they must be set), so that no array byte is read again."""
    at = 0
    for entry in entries:
        location = int(entry.location)
        if location > at:
            crc = zlib.crc32(bytes(location - at), crc)
        crc = crc32_combine(crc, int(entry.crc), entry.nbytes)
        at = location + entry.nbytes
    return crc


def _read_document(stream: IO[bytes], size: int, source: str) -> tuple[dict[str, Any], int]:
    """The checked graph document and the offset where array data starts."""
    prelude = stream.read(PRELUDE.size)
    if len(prelude) < PRELUDE.size or not prelude.startswith(MAGIC):
        raise FormatError(f"{source}: not an ngser msgpack file, or truncated before its header ends")
    _, doc_len, doc_crc, _ = PRELUDE.unpack(prelude)
    if PRELUDE.size + doc_len > size:
        raise FormatError(
            f"{source}: the file is truncated: its graph needs {doc_len} bytes, {size - PRELUDE.size} remain"
        )
    doc_bytes = stream.read(doc_len)
    if len(doc_bytes) != doc_len or zlib.crc32(doc_bytes) != doc_crc:
        raise FormatError(f"{source}: the graph is damaged (checksum mismatch)")
    doc = unpack_value_document(doc_bytes, source)
    if not isinstance(doc, dict):
        raise FormatError(f"{source}: the graph document is not a map")
    check_format(doc.get("format"), source)
    return doc, _align(PRELUDE.size + doc_len)


def _entries(doc: dict[str, Any], available: int, source: str) -> list[ArrayEntry]:
    """The array table, each payload checked to lie inside the data section."""
    table = doc.get("arrays")
    if not isinstance(table, list):
        raise FormatError(f"{source}: the array table is damaged")
    entries = [ArrayEntry.parse(row, ROW, source) for row in table]
    for entry in entries:
        offset = entry.location
        if type(offset) is not int or offset < 0:
            raise FormatError(f"{entry.where}: its table entry is damaged")
        if offset + entry.nbytes > available:
            raise FormatError(
                f"{entry.where}: the file is truncated: the array needs {offset + entry.nbytes} bytes of data, "
                f"{max(available, 0)} remain"
            )
    check_disjoint(entries, source)
    return entries


def _graph(doc: dict[str, Any], arrays: list[ArrayNode], source: str) -> Graph:
    flat = checked_flat(doc.get("nodes"), source)
    writers = doc.get("writers")
    if not isinstance(writers, dict):
        raise FormatError(f"{source}: the header's writer table is damaged")
    meta = {"ngser": doc.get("ngser"), "format": doc.get("format")}
    tables = unpack_tables(doc.get("tables"), source)
    return Graph.from_flat(doc.get("root"), flat, arrays, writers, meta, tables)
