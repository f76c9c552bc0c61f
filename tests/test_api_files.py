"""save() and load() with binary file objects, as pickle users expect."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ngser

FORMATS = ngser.backends.available()
VALUE = {"a": np.arange(12.0).reshape(3, 4), "b": [1, "x", (2.5, None)], "c": np.asfortranarray(np.eye(3))}


def _same(out: Any) -> None:
    assert out["b"] == VALUE["b"]
    for key in ("a", "c"):
        assert out[key].dtype == VALUE[key].dtype
        np.testing.assert_array_equal(out[key], VALUE[key])


class _Pipe(io.RawIOBase):
    """A binary stream that cannot seek, like a pipe or a socket."""

    def __init__(self, data: bytes = b"") -> None:
        self._data, self.written = io.BytesIO(data), bytearray()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)

    def write(self, data: Any) -> int:
        self.written += bytes(data)
        return memoryview(data).nbytes


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_and_load_with_open_files(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    with open(path, "wb") as stream:
        ngser.save(VALUE, stream, format=fmt)
    with open(path, "rb") as stream:
        _same(ngser.load(stream))
    assert ngser.open(path).format == fmt  # the same file a path save would write
    assert ngser.load(path)["b"] == VALUE["b"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bytes_io_and_streams_that_cannot_seek(fmt: str) -> None:
    buffer = io.BytesIO()
    ngser.save(VALUE, buffer, format=fmt)
    assert buffer.getvalue() == ngser.dumps(VALUE, format=fmt) or fmt == "hdf5"  # HDF5 images hold no fixed bytes
    buffer.seek(0)
    _same(ngser.load(buffer))
    pipe = _Pipe()
    ngser.save(VALUE, pipe, format=fmt)
    _same(ngser.load(_Pipe(bytes(pipe.written))))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_object_is_read_from_its_position(fmt: str) -> None:
    stream = io.BytesIO()
    stream.write(b"header of the user's own file")
    ngser.save(VALUE, stream, format=fmt)
    stream.seek(len(b"header of the user's own file"))
    _same(ngser.load(stream))


def test_saving_to_a_file_object_needs_a_format(tmp_path: Path) -> None:
    with pytest.raises(ngser.ArgumentError, match="format="), open(tmp_path / "x", "wb") as stream:
        ngser.save(VALUE, stream)
    assert (tmp_path / "x").stat().st_size == 0


def test_text_files_and_other_objects_are_argument_errors(tmp_path: Path) -> None:
    ngser.save(VALUE, tmp_path / "x.msgpack")
    with open(tmp_path / "x.msgpack", encoding="latin-1") as text, pytest.raises(ngser.ArgumentError, match="binary"):
        ngser.load(text)
    for bad in (123, None, [b"bytes"]):
        with pytest.raises(ngser.ArgumentError, match="path or a"):
            ngser.load(bad)  # type: ignore[arg-type]
        with pytest.raises(ngser.ArgumentError, match="path or a"):
            ngser.save(VALUE, bad, format="msgpack")  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # an ArgumentError is a TypeError too
        ngser.load(123)  # type: ignore[arg-type]


def test_damaged_and_foreign_streams_get_ngser_errors() -> None:
    with pytest.raises(ngser.FormatError, match="not an ngser file"):
        ngser.load(io.BytesIO(b"just some text, not a file ngser wrote"))
    with pytest.raises(ngser.FormatError, match="empty"):
        ngser.load(io.BytesIO(b""))
    data = ngser.dumps(VALUE)
    with pytest.raises(ngser.FormatError, match="truncated|damaged"):
        ngser.load(io.BytesIO(data[: len(data) // 2]))


def test_a_path_save_stays_atomic_and_a_stream_save_writes_in_place(tmp_path: Path) -> None:
    path = tmp_path / "keep.msgpack"
    ngser.save([1, 2], path)
    with pytest.raises(ngser.UnsupportedTypeError):
        ngser.save([object()], path)
    assert ngser.load(path) == [1, 2]  # the failed save left the old file
    assert [p.name for p in tmp_path.iterdir()] == ["keep.msgpack"]


def test_a_trusted_plain_pickle_loads_from_a_stream(tmp_path: Path) -> None:
    import pickle

    data = pickle.dumps({"plain": [1, 2]})
    with pytest.raises(ngser.FormatError, match="not one written by ngser"):
        ngser.load(io.BytesIO(data))
    assert ngser.load(io.BytesIO(data), trusted=True) == {"plain": [1, 2]}
    path = tmp_path / "plain.pkl"
    path.write_bytes(data)
    with open(path, "rb") as stream:
        assert ngser.load(stream, trusted=True) == {"plain": [1, 2]}
    assert os.path.exists(path)
