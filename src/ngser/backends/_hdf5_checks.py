"""Checks of an HDF5 file's structure, from its metadata alone, before the reader reads any data.

A file whose checksums all hold can still ask for what ngser's writer never produces: data
outside the file (external, soft or user-defined links, virtual datasets, external storage,
storage past the end of the file), far more memory or time than the file's size justifies
(datasets never written, gzip of zeros, one-byte chunks, filters ngser never uses), or one
stored payload behind several arrays (two entries naming one dataset, hard links to one
object, datasets sharing bytes of the file). :class:`Inspector` refuses all of them with a
:class:`~ngser.FormatError` that names the file, the array node or dataset, and what to do.

Objects are opened one link at a time: each link is looked up first (``H5Lget_info``, which
never follows it) and must be a hard link; only then is the object opened. The link access
property list used for opening makes HDF5 itself unable to reach another file, should a link
ever get past that check: external links lead to an empty in-memory file (its ``elink_fapl``
uses h5py's file-object driver on an empty ``BytesIO``, so HDF5 opens no file by name; the
elink prefix, for relative names, is a directory that exists nowhere). External storage and
virtual datasets are refused from their creation properties before any read; HDF5 opens their
files only when data is read (a FIFO as external storage does not block the check). The
dataset access prefixes (``efile_prefix``, ``virtual_prefix``) are left alone: a dataset
opened with a prefix other than that of a copy already open (the user's own h5py handle on
the same file) fails to open.
Nothing here reads a dataset's data; the chunk walk reads the chunk index, not the chunks.

>>> inspector = Inspector(file, "result.h5", limits)
>>> dataset = inspector.dataset("/arrays/ngsolve.Mesh_0/points", where, dtype, shape, nbytes)
>>> inspector.finish()          # no two datasets share bytes of the file
"""

from __future__ import annotations

import functools
import io
import itertools
import math
from typing import Any

import h5py
import numpy as np
from h5py import h5a, h5d, h5fd, h5g, h5l, h5o, h5p, h5t, h5z

from ..errors import FormatError, shown
from . import Limits

__all__ = ["Inspector", "ALLOWED_FILTERS", "EXPANSION_ALLOWANCE", "MIN_CHUNK_BYTES"]

#: The HDF5 filters ngser's writer uses (``compression="gzip"`` or ``"lzf"``, with shuffle).
ALLOWED_FILTERS = {h5z.FILTER_DEFLATE: "deflate", h5z.FILTER_SHUFFLE: "shuffle", h5z.FILTER_LZF: "lzf"}
#: Chunks hold at least this many bytes (or the whole dataset, if smaller) in files ngser writes:
#: h5py's chunk guess, which the writer uses, never goes below 4 KiB.
MIN_CHUNK_BYTES = 1024
#: Bytes of a file's arrays that may exceed ``Limits.expansion`` times their storage, in all: small
#: compressed arrays of zeros (which ngser's own writer makes, about 1000x) load with the default
#: limits; anything larger must be in proportion to the file.
EXPANSION_ALLOWANCE = 64 << 20
#: Prepended to relative file names HDF5 might look up: a directory that does not exist.
NOWHERE = "/nonexistent-ngser-sandbox/"
_FILTER_NAMES = {h5z.FILTER_FLETCHER32: "fletcher32", h5z.FILTER_SZIP: "szip", h5z.FILTER_NBIT: "nbit"}
_FILTER_NAMES[h5z.FILTER_SCALEOFFSET] = "scaleoffset"
#: Header message types (HDF5 file format specification, IV.A.2): external data files, filter pipeline.
_EFL_MESSAGE, _PIPELINE_MESSAGE = 0x0007, 0x000B
_EFL_OR_PIPELINE = (1 << _EFL_MESSAGE) | (1 << _PIPELINE_MESSAGE)
_TRUST = "if you trust the file, rewrite it with the data inside it (e.g. h5repack -l CONTI) and load the copy"


#: At most this many top-level groups are kept open (a root dict's keys are top-level groups).
_OPEN_GROUPS = 64

#: The only "file" an external link could lead HDF5 to: empty, so not an HDF5 file (kept alive here,
#: since HDF5 holds it by pointer in the file access property list).
_EMPTY = io.BytesIO()


@functools.cache
def _link_access() -> Any:
    """The link access property list groups and datasets are opened with (see the module doc)."""
    nowhere = h5p.create(h5p.FILE_ACCESS)
    nowhere.set_fileobj_driver(h5fd.fileobj_driver, _EMPTY)
    lapl = h5p.create(h5p.LINK_ACCESS)
    lapl.set_elink_fapl(nowhere)
    lapl.set_elink_prefix(NOWHERE.encode())
    lapl.set_nlinks(1)
    return lapl


class Inspector:
    """Opens and checks the objects of one open file; remembers what it opened, so aliases and
    shared storage are found across all datasets."""

    def __init__(self, file: h5py.File, source: str, limits: Limits) -> None:
        self.fid, self.source, self.limits = file.id, source, limits
        self.size = int(self.fid.get_filesize())
        self._root = h5g.open(self.fid, b"/")
        self._groups: dict[str, Any] = {}  # top-level groups, kept open: "/ngser", the first others
        self._objects: dict[int, str] = {}  # object header address -> the path it was opened by
        self._extents: list[tuple[int, int, str]] = []  # (start, end, what) of stored bytes
        self._excess = 0  # bytes of arrays beyond the expansion ratio so far

    # -- links and objects --------------------------------------------------------------------
    def has_link(self, name: str) -> bool:
        """Whether the root group has a link ``name`` (``"/ngser"``), of any kind; not followed."""
        return bool(self._root.links.exists(name.lstrip("/").encode()))

    def group(self, path: str, where: str) -> Any:
        """The group at the absolute ``path``, every link on the way checked to be a hard link."""
        return self._walk(path, where, dataset=False)[0]

    def _walk(self, path: str, where: str, dataset: bool) -> tuple[Any, int]:
        """The object at ``path`` (and its header address), every link on the way checked to be a
        hard link before HDF5 goes through it. Only top-level groups (``/ngser``, ``/arrays``) are
        kept open; deeper links are looked up by relative path from them, one more component at
        a time (opening each group on the way costs as much as opening the dataset)."""
        parts = path.split("/")[1:]
        if not path.startswith("/") or not all(p and p not in (".", "..") and "\0" not in p for p in parts):
            raise FormatError(f"{where}: {shown(path)} is not a dataset path ngser writes; the file is damaged")
        try:
            names = [part.encode("utf-8") for part in parts]
        except UnicodeEncodeError:
            raise FormatError(f"{where}: {shown(path)} is not a dataset path ngser writes") from None
        base, first = self._root, 0
        if len(parts) > 1 or not dataset:
            top = "/" + parts[0]
            base = self._groups.get(top)
            if base is None:
                self._hard_link(self._root, names[0], top, path, where)
                base = self._open(self._root, names[0], top, where, group=True)
                if len(self._groups) < _OPEN_GROUPS:
                    self._groups[top] = base
            if len(parts) == 1:
                return base, -1
            first = 1
        address = -1
        for i in range(first, len(parts)):  # components before i are checked hard links
            address = self._hard_link(
                base, b"/".join(names[first : i + 1]), "/" + "/".join(parts[: i + 1]), path, where
            )
        return self._open(base, b"/".join(names[first:]), path, where, group=not dataset), address

    def _open(self, base: Any, name: bytes, here: str, where: str, group: bool) -> Any:
        """The object ``name`` (relative to ``base``, through checked hard links): a group or a dataset."""
        try:
            found = h5o.open(base, name, lapl=_link_access())
        except Exception as exc:
            raise FormatError(f"{where}: {here} cannot be opened ({_why(exc)}); the file is damaged") from exc
        if not isinstance(found, h5g.GroupID if group else h5d.DatasetID):
            raise FormatError(f"{where}: {here} is not {'a group' if group else 'a dataset'}; the file is damaged")
        return found

    def reopen(self, path: str, where: str) -> Any:
        """The dataset at ``path``, checked by :meth:`dataset` before, opened again the same way,
        one checked hard link at a time (readers keep no dataset open between the checks and the
        reads: HDF5 opens and closes everything more slowly while thousands of objects are open)."""
        return self._walk(path, where, dataset=True)[0]

    def _hard_link(self, parent: Any, name: bytes, here: str, path: str, where: str) -> int:
        """The address of the object the link ``name`` of ``parent`` points to, which must be a
        hard link (looked up without following it)."""
        try:
            info = parent.links.get_info(name)
        except Exception as exc:
            raise FormatError(f"{where}: {here} is missing ({_why(exc)}); the file is damaged") from exc
        if info.type == h5l.TYPE_HARD:
            return int(info.u)
        subject = f"{where} is" if here == path else f"{where}: the group {here} on its path is"
        if info.type == h5l.TYPE_SOFT:
            kind, target = "a soft link", _link_value(parent, name)
        elif info.type == h5l.TYPE_EXTERNAL:
            kind, target = "an external link", _link_value(parent, name)
        else:
            kind, target = f"a user-defined link (class {info.type})", ""
        raise FormatError(
            f"{subject} {kind}{f' to {target}' if target else ''}; ngser writes only hard links and never follows "
            "links out of a file or between its objects, so nothing was read; if you trust the file, replace the "
            "link by a copy of its target (h5py: Group.copy) and load the copy"
        )

    # -- datasets ------------------------------------------------------------------------------
    def dataset(
        self, path: str, where: str, dtype: np.dtype[Any] | str, shape: tuple[int, ...] | None, nbytes: int | None
    ) -> Any:
        """The dataset at ``path``, checked: a hard link to an object no other entry uses, of
        ``dtype`` (a numpy dtype, or a kind letter such as ``"S"``) and ``shape`` (``None``:
        any one-dimensional shape), whose ``nbytes`` in memory (``None``: its dataspace in
        ``dtype``) are stored inside the file, in proportion to them."""
        dsid, address = self._walk(path, where, dataset=True)
        other = self._objects.get(address)
        if other is not None:
            raise FormatError(
                f"{where}: {path} and {other} are one dataset (hard links to one object); each array has a dataset "
                "of its own in files ngser writes, so the file is damaged"
            )
        self._objects[address] = path
        kind = dsid.get_type()
        stored, found = kind.dtype, tuple(dsid.shape)
        if not (stored.kind == dtype and stored.itemsize > 0 if isinstance(dtype, str) else stored == dtype):
            raise FormatError(f"{where}: the dataset holds {stored}, not the {dtype} ngser stores there; damaged file")
        if shape is None and len(found) != 1:
            raise FormatError(f"{where}: the dataset has shape {found}, ngser writes a 1-d one; damaged file")
        if shape is not None and found != shape:
            raise FormatError(f"{where}: the dataset has shape {found}, the array table says {shape}")
        count = math.prod(found)
        memory = count * (dtype.itemsize if isinstance(dtype, np.dtype) else stored.itemsize)
        self._storage(dsid, path, where, memory if nbytes is None else nbytes, count * kind.get_size())
        return dsid

    def _storage(self, dsid: Any, path: str, where: str, memory: int, data: int) -> None:
        """Refuse storage outside the file, or out of proportion to the ``memory`` bytes it fills
        (``data``: the bytes of the dataspace in the file's datatype, before any filter)."""
        present = h5o.get_info(dsid).hdr.mesg.present  # which header messages the object has
        offset = dsid.get_offset()  # None unless contiguous and allocated
        if offset is not None and not present & _EFL_OR_PIPELINE:  # the common case, without the dcpl
            if memory:
                self._contiguous(offset, dsid.get_storage_size(), path, where, memory, data)
            return
        dcpl = dsid.get_create_plist()
        layout = dcpl.get_layout()
        if layout == h5d.VIRTUAL:
            raise FormatError(
                f"{where} is a virtual dataset (its data would come from {dcpl.get_virtual_count()} mapped source(s), "
                f"e.g. {shown(_first_source(dcpl))}); ngser never writes them and reads only data inside the file, "
                f"so nothing was read; {_TRUST}"
            )
        external = dcpl.get_external_count()
        if external or present & (1 << _EFL_MESSAGE):
            raise FormatError(
                f"{where} stores its data in {external} external file(s) ({shown(_first_external(dcpl))}); ngser "
                f"never writes external storage and reads only data inside the file, so nothing was read; {_TRUST}"
            )
        filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
        for code in filters:
            if code not in ALLOWED_FILTERS:
                raise FormatError(
                    f"{where}: it is stored with the HDF5 filter {_FILTER_NAMES.get(code, 'id')} (id {code}), which "
                    "ngser never writes (it writes deflate/gzip, shuffle and lzf), so nothing was read; if you trust "
                    "the file, rewrite it without that filter (e.g. h5repack -f NONE) and load the copy"
                )
        if memory == 0:
            return  # nothing is read
        storage = dsid.get_storage_size()
        if layout == h5d.COMPACT:  # in the object header itself: inside the file
            if storage != data:
                raise FormatError(f"{where}: it stores {storage} bytes for {data} bytes of data; the file is damaged")
        elif layout == h5d.CONTIGUOUS:
            if offset is None or not storage:
                self._never_written(where, memory, storage)
            self._contiguous(offset, storage, path, where, memory, data)
        elif layout == h5d.CHUNKED:
            self._chunked(dsid, dcpl.get_chunk(), path, where, memory, data, storage, bool(filters))
        else:
            raise FormatError(f"{where}: unknown HDF5 storage layout {layout}; the file is damaged or newer than ngser")

    def _contiguous(self, offset: int, storage: int, path: str, where: str, memory: int, data: int) -> None:
        if storage != data:
            raise FormatError(f"{where}: it stores {storage:,} bytes for {data:,} bytes of data; damaged file")
        self._inside(int(offset), storage, f"{where}: its storage", path)
        self._expansion(where, memory, storage)

    def _chunked(
        self,
        dsid: Any,
        chunk: tuple[int, ...],
        path: str,
        where: str,
        memory: int,
        data: int,
        storage: int,
        filtered: bool,
    ) -> None:
        """A chunked dataset: chunks not far smaller than ngser writes, every one stored, in
        proportion to ``memory``, inside the file (one walk over the chunk index, no chunk read)."""
        chunk_bytes = math.prod(chunk) * (data // max(math.prod(dsid.shape), 1))
        smallest = min(data, MIN_CHUNK_BYTES)
        if chunk_bytes < smallest:
            raise FormatError(
                f"{where}: it is stored in chunks of {chunk_bytes} bytes; ngser writes chunks of at least {smallest} "
                "bytes (tiny chunks cost one HDF5 index lookup each), so nothing was read; if you trust the file, "
                "rewrite it with larger chunks (e.g. h5repack -l CONTI) and load the copy"
            )
        expected = math.prod(-(-n // c) for n, c in zip(dsid.shape, chunk))
        if not storage or dsid.get_space_status() != h5d.SPACE_STATUS_ALLOCATED:
            self._never_written(where, memory, storage)
        self._expansion(where, memory, storage)  # before the walk: bounds the chunk count by the file size
        count = dsid.get_num_chunks()
        if count != expected:
            raise FormatError(
                f"{where}: only {count} of its {expected} chunks are stored; the others were never written (HDF5 "
                "would return fill values), and ngser writes every chunk, so the file is damaged; nothing was read"
            )
        chunks = _chunk_spans(dsid, count)
        if len(chunks) != count or sum(size for _, size in chunks) != storage:
            raise FormatError(f"{where}: its chunk index disagrees with its storage size; the file is damaged")
        for index, (offset, size) in enumerate(chunks):
            if size <= 0 or (not filtered and size != chunk_bytes):
                raise FormatError(f"{where}: chunk {index} stores {size} bytes; the file is damaged")
            self._inside(offset, size, f"{where}: chunk {index}", path)

    def _inside(self, offset: int, size: int, what: str, path: str) -> None:
        if offset < 0 or offset + size > self.size:
            raise FormatError(
                f"{what} (bytes {offset:,} to {offset + size:,}) lies outside the file ({self.size:,} bytes); ngser "
                "reads only data inside the file, so the file is truncated or damaged and nothing was read"
            )
        self._extents.append((offset, offset + size, path))

    def _never_written(self, where: str, memory: int, storage: int) -> None:
        raise FormatError(
            f"{where}: its {memory:,} bytes were never written (the file stores {storage:,} bytes of it; HDF5 would "
            "return fill values); ngser writes every array in full, so the file is damaged and nothing was read"
        )

    def _expansion(self, where: str, memory: int, storage: int) -> None:
        """Refuse ``memory`` bytes from ``storage`` bytes beyond ``Limits.expansion`` times, once the
        file's arrays have used up :data:`EXPANSION_ALLOWANCE` (so a few MB of zeros that ngser
        itself compressed still load with the default limits, and 3 GiB from 6 KB do not)."""
        limit = self.limits.expansion
        if memory <= limit * storage:
            return
        if self._excess + memory <= EXPANSION_ALLOWANCE:
            self._excess += memory
            return
        raise FormatError(
            f"{where}: it would take {memory:,} bytes in memory, {memory / max(storage, 1):,.0f} times its storage "
            f"in the file ({storage:,} bytes); Limits.expansion ({limit:g}) allows at most that ratio beyond "
            f"{EXPANSION_ALLOWANCE >> 20} MiB per file (gzip of zeros does this), so nothing was read. Load with "
            "limits=ngser.Limits(expansion=...) if you trust the file"
        )

    def finish(self) -> None:
        """Refuse datasets that share bytes of the file: each array has storage of its own."""
        self._extents.sort()
        for (_, end, first), (start, _, second) in itertools.pairwise(self._extents):
            if start < end:
                raise FormatError(
                    f"{self.source}: {first} and {second} share bytes {start:,} to {end:,} of the file; ngser "
                    "gives each dataset storage of its own, so the file is damaged"
                )

    # -- attributes ------------------------------------------------------------------------------
    def attribute(self, group: Any, path: str, name: str) -> Any:
        """The scalar attribute ``name`` of ``group`` (at ``path``), or ``None`` if it has none.
        Only numbers and fixed-width strings are read, and only if they fit in the file."""
        encoded = name.encode()
        where = f"{self.source}: {path}@{name}"
        if not h5a.exists(group, encoded):
            return None
        attr = h5a.open(group, encoded)
        kind = attr.get_type()
        if isinstance(kind, h5t.TypeStringID) and kind.is_variable_str():
            raise FormatError(
                f"{where} is a variable-length string; ngser writes fixed-width ones (variable-length strings live "
                "in HDF5's global heap, whose damaged copies can hang a reader), so it was not read; damaged file"
            )
        if kind.get_class() not in (h5t.INTEGER, h5t.FLOAT, h5t.STRING):
            raise FormatError(f"{where} is not a number or a text; the file is damaged")
        if attr.get_space().get_simple_extent_npoints() != 1 or kind.get_size() > self.size:
            raise FormatError(f"{where} is not one value of a size the file can hold; the file is damaged")
        out = np.empty(attr.shape, attr.dtype)
        attr.read(out)
        return out.reshape(-1)[0]


def _chunk_spans(dsid: Any, count: int) -> list[tuple[int, int]]:
    """(file offset, stored size) of every chunk, from the chunk index alone: one pass over the
    index (``H5Dchunk_iter``) where HDF5 has it, else one lookup per chunk."""
    spans: list[tuple[int, int]] = []
    try:
        dsid.chunk_iter(lambda info: spans.append((int(info.byte_offset), int(info.size))))
    except (AttributeError, NotImplementedError):
        spans = []
        for index in range(count):
            info = dsid.get_chunk_info(index)
            spans.append((int(info.byte_offset), int(info.size)))
    return spans


def _link_value(parent: Any, name: bytes) -> str:
    try:
        value = parent.links.get_val(name)
    except Exception:
        return ""
    if isinstance(value, tuple):
        return ":".join(shown(part.decode("utf-8", "replace")) for part in value)
    return shown(value.decode("utf-8", "replace"))


def _first_source(dcpl: Any) -> str:
    return _quietly(lambda: f"{dcpl.get_virtual_filename(0)}:{dcpl.get_virtual_dsetname(0)}")


def _first_external(dcpl: Any) -> str:
    return _quietly(lambda: bytes(dcpl.get_external(0)[0]).decode("utf-8", "replace"))


def _quietly(describe: Any) -> str:
    """``describe()``, or ``"?"`` if even that fails on a damaged file (it only feeds a message)."""
    try:
        return str(describe())
    except Exception:
        return "?"


def _why(exc: BaseException) -> str:
    """A short reason from an h5py exception (without HDF5's error-stack details)."""
    return str(exc).split("(", 1)[0].strip() or type(exc).__name__
