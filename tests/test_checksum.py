"""ngser.backends._checksum: the parallel CRC32 must equal zlib.crc32 bit for bit (the format depends on it)."""

from __future__ import annotations

import multiprocessing
import os
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ngser.backends import _checksum as checksum
from ngser.backends._checksum import MIN_PIECE, PARALLEL_THRESHOLD, crc32, crc32_async, crc32_combine


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_combine_equals_the_crc_of_the_concatenation(a: bytes, b: bytes) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_combine_over_lengths_beyond_32_bits() -> None:
    # crc(A + 0^n) is crc(A) shifted by n zero bytes: check the shift against zlib's own
    # continuation for a length small enough to build, and that huge lengths stay 32-bit.
    a, zeros = b"ngser", bytes(1 << 16)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(zeros), len(zeros)) == zlib.crc32(a + zeros)
    assert 0 <= crc32_combine(0xDEADBEEF, 0x12345678, 1 << 40) < 1 << 32


def test_combine_refuses_a_negative_length() -> None:
    with pytest.raises(ValueError):
        crc32_combine(1, 2, -1)


@pytest.mark.parametrize(
    "size",
    [0, 1, PARALLEL_THRESHOLD - 1, PARALLEL_THRESHOLD, MIN_PIECE + 1, 2 * MIN_PIECE, 3 * MIN_PIECE + 17, 5 * MIN_PIECE],
)
def test_crc32_equals_zlib_at_the_piece_boundaries(size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    assert crc32(data) == zlib.crc32(data)
    assert crc32_async(memoryview(data)).result() == zlib.crc32(data)


def test_crc32_of_multidimensional_and_typed_buffers() -> None:
    data = np.arange(3 * MIN_PIECE // 8, dtype=np.float64).reshape(3, -1)
    assert crc32(data) == zlib.crc32(data)


def test_crc32_refuses_non_contiguous_buffers() -> None:
    data = np.zeros((1000, 1000))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        crc32(data)


def _child_crc(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    data = np.arange(4 * MIN_PIECE // 8, dtype=np.int64)
    queue.put(crc32(data) == zlib.crc32(data))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_crc32_works_in_a_forked_child_after_the_parent_used_the_pool() -> None:
    data = np.arange(4 * MIN_PIECE // 8, dtype=np.int64)
    assert crc32(data) == zlib.crc32(data)  # the parent's pool threads exist now
    assert checksum._pool is not None
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_crc, args=(queue,))
    child.start()
    child.join(60)
    assert child.exitcode == 0, "the forked child hung or died computing a CRC"
    assert queue.get(timeout=5) is True
