"""Damage is detected, never misread.

Real files are damaged region by region (header, graph document, each array's data),
byte by byte and bit by bit, and truncated at every offset. Every damaged file must
either raise an :class:`ngser.NgserError` that says which file and which part is
damaged, or (for bytes that carry no data, such as padding) load exactly the values
that were saved: never silently different values.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ngser
from fixture_types import REGISTRY, Field, Point, fixture_objects, same
from helpers import EXTENSION, msgpack_data_start, msgpack_parts
from ngser.backends._codec import unpack_value_document
from ngser.backends.msgpack_format import PRELUDE

#: Masks XORed into each byte: single bits (a '<' dtype byte becomes '>' with 0x02,
#: pickle's True becomes False with 0x01) and the whole byte.
MASKS = (0x01, 0x02, 0x10, 0x80, 0xFF)
#: At most this many byte positions per file are damaged in the exhaustive tests.
MAX_POSITIONS = 1500


def sample() -> dict[str, Any]:
    """Objects, labelled arrays (inside a registered object) and plain arrays, with distinctive bytes."""
    objects = fixture_objects()
    objects["field2"] = Field(np.linspace(3.0, 4.0, 16), Point(0.5, 0.25), "K")
    objects["matrix"] = np.arange(100, 124, dtype="<i8").reshape(4, 6)
    objects["fortran"] = np.asfortranarray(np.arange(1000.0, 1012.0).reshape(3, 4))
    return objects


def load_bytes(data: bytes) -> Any:
    return ngser.loads(data, registry=REGISTRY)


def flip(data: bytes, pos: int, mask: int = 0xFF) -> bytes:
    damaged = bytearray(data)
    damaged[pos] ^= mask
    return bytes(damaged)


def positions(n: int) -> range:
    return range(0, n, max(1, -(-n // MAX_POSITIONS)))


def arrays_of(original: Any) -> list[tuple[int, str | None, bytes]]:
    """(id, label, raw bytes) of every array node in the graph of ``original``."""
    graph = ngser.encode(original, registry=REGISTRY)
    out = []
    for node in graph.arrays:
        data = node.load()
        raw = (data.T if data.flags.f_contiguous and not data.flags.c_contiguous else data).tobytes()
        out.append((node.id, node.label, raw))
    return out


def regions(fmt: str, data: bytes) -> dict[str, Any]:
    """Where the header, graph document and each array's bytes lie in a file of ``fmt``."""
    if fmt == "msgpack":
        doc_bytes, _ = msgpack_parts(data)
        doc_len = len(doc_bytes)
        doc = unpack_value_document(doc_bytes, "test")
        start = msgpack_data_start(doc_len)
        arrays = [
            (nid, label, start + off, start + off + nbytes) for nid, _, _, _, off, nbytes, _, label in doc["arrays"]
        ]
        return {"header": (0, PRELUDE.size), "graph": (PRELUDE.size, PRELUDE.size + doc_len), "arrays": arrays}
    if fmt == "pickle":
        inner = pickle.loads(data)[2]
        graph_start = data.index(inner)
        arrays = []
        for nid, label, raw in arrays_of(sample()):
            if len(raw) >= 16:
                begin = data.index(raw)
                arrays.append((nid, label, begin, begin + len(raw)))
        return {"header": (0, graph_start), "graph": (graph_start, graph_start + len(inner)), "arrays": arrays}
    pytest.skip(f"no byte map of the {fmt} format")


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {fmt: ngser.dumps(sample(), format=fmt, registry=REGISTRY) for fmt in ngser.backends.available()}


@pytest.fixture(params=["msgpack", "pickle"])
def stream_fmt(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_sample_round_trips(files: dict[str, bytes], fmt: str) -> None:
    assert same(sample(), load_bytes(files[fmt]))


def test_flipped_array_byte_is_a_checksum_error_naming_the_array(
    files: dict[str, bytes], stream_fmt: str, tmp_path: Path
) -> None:
    data = files[stream_fmt]
    found = regions(stream_fmt, data)["arrays"]
    assert len(found) >= 4
    path = tmp_path / f"damaged{EXTENSION[stream_fmt]}"
    for nid, label, begin, end in found:
        for pos in range(begin, end):
            mask = MASKS[pos % len(MASKS)]
            with pytest.raises(ngser.FormatError) as info:
                load_bytes(flip(data, pos, mask))
            message = str(info.value)
            assert f"array node {nid} " in message and "checksum" in message, message
            if label:
                assert label in message
        path.write_bytes(flip(data, (begin + end) // 2))
        with pytest.raises(ngser.FormatError, match=f"^{path}: array node {nid} .*damaged"):
            ngser.load(path, registry=REGISTRY)


def test_flipped_graph_byte_is_a_checksum_error(files: dict[str, bytes], stream_fmt: str, tmp_path: Path) -> None:
    data = files[stream_fmt]
    begin, end = regions(stream_fmt, data)["graph"]
    for pos in range(begin, end):
        with pytest.raises(ngser.FormatError, match="graph is damaged .*checksum"):
            load_bytes(flip(data, pos, MASKS[pos % len(MASKS)]))
    path = tmp_path / f"damaged{EXTENSION[stream_fmt]}"
    path.write_bytes(flip(data, (begin + end) // 2))
    with pytest.raises(ngser.FormatError, match=f"^{path}: the graph is damaged"):
        ngser.load(path, registry=REGISTRY)


def test_msgpack_header_fields(files: dict[str, bytes]) -> None:
    data = files["msgpack"]
    for pos in range(8):
        with pytest.raises(ngser.FormatError, match="not .*ngser"):
            load_bytes(flip(data, pos))
    for pos in range(8, 16):  # graph length
        with pytest.raises(ngser.FormatError, match="truncated|graph is damaged"):
            load_bytes(flip(data, pos))
    for pos in range(16, 20):  # graph checksum
        with pytest.raises(ngser.FormatError, match="graph is damaged .*checksum"):
            load_bytes(flip(data, pos))
    for pos in range(20, 24):  # reserved: carries nothing, so damage there is harmless
        assert same(sample(), load_bytes(flip(data, pos)))


def _silent_misreads(data: bytes, original: Any) -> tuple[list[tuple[int, int]], list[str]]:
    silent, bugs = [], []
    for pos in positions(len(data)):
        for mask in MASKS:
            damaged = flip(data, pos, mask)
            try:
                loaded = load_bytes(damaged)
            except ngser.NgserError:
                continue
            except Exception as exc:
                bugs.append(f"byte {pos} ^ {mask:#04x}: {type(exc).__name__}: {exc}")
                continue
            if not same(original, loaded):
                silent.append((pos, mask))
    return silent, bugs


def flip_worker(fmt: str, start: int, stop: int) -> None:
    """Damage the sample file of ``fmt`` at byte positions ``start``..``stop`` (five masks
    each) and print one JSON line per position: "error", "same", "different" or "bug: ...".
    Run in a subprocess by :func:`test_fuzz.run_fuzz`, which survives readers that hang in C."""
    data = ngser.dumps(sample(), format=fmt, registry=REGISTRY)
    original = sample()
    step = positions(len(data)).step
    for case in range(start, stop):
        pos = case * step
        results = set()
        for mask in MASKS:
            damaged = flip(data, pos, mask)
            try:
                loaded = load_bytes(damaged)
            except ngser.NgserError:
                results.add("error")
                continue
            except Exception as exc:
                results.add(f"bug: byte {pos} ^ {mask:#04x}: {type(exc).__name__}: {exc}")
                continue
            results.add("same" if same(original, loaded) else f"different (mask {mask:#04x})")
        worst = sorted(results, key=lambda r: (not r.startswith("bug"), not r.startswith("diff"), r))
        print(
            json.dumps({"case": case, "mutator": f"flip byte {pos}", "result": worst[0] if worst else "error"}),
            flush=True,
        )


@pytest.fixture(params=sorted(set(ngser.backends.available()) - {"msgpack", "pickle"}) or [None])
def other_fmt(request: pytest.FixtureRequest) -> str:
    if request.param is None:
        pytest.skip("no other backend available")
    return str(request.param)


def test_every_flipped_byte_is_detected_or_harmless(files: dict[str, bytes], stream_fmt: str) -> None:
    """Every byte, five masks each: an NgserError or exactly the saved values."""
    silent, bugs = _silent_misreads(files[stream_fmt], sample())
    assert not bugs, bugs[:5]
    assert not silent, f"{len(silent)} damaged files load with different values: (byte, mask) {silent[:10]}"


#: Backends known to fail the flip sweep (see tests/fuzz_regressions/index.json).
KNOWN_FLIP_FAILURES: dict[str, str] = {}


def test_every_flipped_byte_is_detected_or_harmless_in_a_subprocess(
    files: dict[str, bytes], other_fmt: str, request: pytest.FixtureRequest
) -> None:
    """The same for the other backends (HDF5), run by a watchdog since a C library may hang."""
    from test_fuzz import run_fuzz

    if other_fmt in KNOWN_FLIP_FAILURES:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN_FLIP_FAILURES[other_fmt]))

    cases = len(positions(len(files[other_fmt])))
    counts, bugs = run_fuzz(other_fmt, cases, "test_damage", "flip_worker")
    different = {k: v for k, v in counts.items() if k.startswith("different")}
    assert not bugs, f"{len(bugs)} damaged {other_fmt} files: " + "; ".join(list(bugs.values())[:8])
    assert not different, f"damaged {other_fmt} files load with different values: {different}"


def test_pickle_array_table_damage_is_detected() -> None:
    """A pickle file whose dtype '<f8' was flipped to '>f8' loads byte-swapped values."""
    original = {"values": np.arange(1.0, 5.0)}
    data = ngser.dumps(original, format="pickle")
    damaged = data.replace(b"<f8", b">f8")
    assert damaged != data
    with pytest.raises(ngser.NgserError):
        loaded = ngser.loads(damaged)
        print("misread as", loaded)


def test_truncation_at_every_offset(files: dict[str, bytes], fmt: str) -> None:
    data = files[fmt]
    for end in positions(len(data)):
        with pytest.raises(ngser.NgserError):
            load_bytes(data[:end])


def test_truncated_file_names_the_file(files: dict[str, bytes], fmt: str, tmp_path: Path) -> None:
    data = files[fmt]
    path = tmp_path / f"truncated{EXTENSION[fmt]}"
    for end in (0, 1, 8, 20, 30, len(data) // 3, len(data) // 2, len(data) - 8, len(data) - 1):
        path.write_bytes(data[:end])
        with pytest.raises(ngser.NgserError) as info:
            ngser.load(path, registry=REGISTRY)
        assert str(path) in str(info.value), info.value


def test_truncated_msgpack_says_truncated(files: dict[str, bytes]) -> None:
    data = files["msgpack"]
    graph_end = regions("msgpack", data)["graph"][1]
    for end in range(0, len(data), 7):
        with pytest.raises(ngser.FormatError) as info:
            load_bytes(data[:end])
        message = str(info.value)
        if end >= graph_end:
            assert "truncated" in message and "array node" in message, (end, message)
        elif end >= 24:
            assert "truncated" in message, (end, message)


def test_garbage(fmt: str, files: dict[str, bytes], tmp_path: Path) -> None:
    """Random bytes, random bytes after a real header, zeros: always an NgserError."""
    rng = random.Random(6)
    data = files[fmt]
    head = data[:32]
    for size in (1, 7, 16, 100, 1000, len(data)):
        for prefix in (b"", head):
            junk = prefix + rng.randbytes(size)
            with pytest.raises(ngser.NgserError):
                load_bytes(junk)
    with pytest.raises(ngser.NgserError):
        load_bytes(bytes(len(data)))
    path = tmp_path / f"garbage{EXTENSION[fmt]}"
    path.write_bytes(head + bytes(1000))
    with pytest.raises(ngser.NgserError, match=str(path)):
        ngser.load(path)


def test_splice_of_two_files_detected(files: dict[str, bytes], stream_fmt: str) -> None:
    """The first half of one file joined to the second half of another."""
    a = files[stream_fmt]
    b = ngser.dumps({"other": np.arange(50.0), "x": [Point(9.0, 9.0)]}, format=stream_fmt, registry=REGISTRY)
    for cut in range(0, min(len(a), len(b)), 11):
        spliced = a[:cut] + b[cut:]
        try:
            loaded = load_bytes(spliced)
        except ngser.NgserError:
            continue
        assert same(sample(), loaded) or same({"other": np.arange(50.0), "x": [Point(9.0, 9.0)]}, loaded), cut
