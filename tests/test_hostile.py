"""Files from strangers, with correct checksums: no code runs, no hang, no memory bomb, only NgserErrors.

Each hostile file is built here with ngser's own writer (so every checksum matches), and each
load that could hang or allocate runs in a subprocess with a time and address-space limit.
"""

from __future__ import annotations

import copyreg
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

import ngser
from helpers import EXTENSION, msgpack_file, msgpack_parts
from ngser.backends import _codec, available, get_backend
from ngser.graph import ArrayNode, Graph, ObjectNode, PairsDict, Ref

FORMATS = available()


def _write(fmt: str, path: Path, root: Any, nodes: list[ObjectNode] = (), arrays: list[ArrayNode] = ()) -> Path:
    """A file holding exactly this graph, written by ngser's own writer: every checksum is right."""
    writers = {node.name: node.version for node in nodes}
    graph = Graph(root, list(nodes), list(arrays), writers, {"ngser": ngser.__version__, "format": 1})
    target = path.with_suffix(EXTENSION[fmt])
    get_backend(fmt).write_path(graph, target)
    return target


LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
import ngser
try:
    value = ngser.load(sys.argv[1])
except ngser.NgserError as exc:
    print("NGSER", type(exc).__name__, exc)
else:
    print("LOADED", type(value).__name__)
"""


def _load_limited(path: Path, seconds: float = 60, mem: int = 2 << 30) -> str:
    """Load ``path`` in a child with ``mem`` bytes of address space; its one-line verdict."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    code = LIMITED.format(mem=mem)
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=seconds, env=env
    )
    assert out.returncode == 0, f"the loading process died ({out.returncode}): {out.stderr[-2000:]}"
    return out.stdout.strip()


# -- code -------------------------------------------------------------------------------------------
def test_pickle_extension_codes_never_reach_a_callable(tmp_path: Path) -> None:
    """EXT1/EXT2/EXT4 take a callable from copyreg's extension cache without find_class."""
    sentinel = tmp_path / "RAN"
    copyreg.add_extension("posix", "system", 0x4E47)
    try:
        pickle.loads(pickle.dumps(os.system, protocol=2))  # a library used the code once: it is cached
        evil = pickle.dumps(_Reduce(os.system, (f"touch '{sentinel}'",)), protocol=2)
        assert b"\x83" in evil or b"\x82" in evil  # EXT2 or EXT1, not a GLOBAL
        path = tmp_path / "evil.pkl"
        path.write_bytes(evil)
        for load in (lambda: ngser.load(path), lambda: ngser.loads(evil), lambda: ngser.read_graph(path)):
            with pytest.raises(ngser.UnsafeLoadError, match=r"opcode EXT[124].*Nothing was run"):
                load()
        assert not sentinel.exists()
    finally:
        copyreg.remove_extension("posix", "system", 0x4E47)
        copyreg.clear_extension_cache()


class _Reduce:
    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> Any:
        return (self.func, self.args)


@pytest.mark.parametrize("opcode", [b"R", b"b", b"\x81", b"\x92", b"P0\n", b"Q"])
def test_every_opcode_that_calls_is_refused_before_it_runs(opcode: bytes) -> None:
    # REDUCE, BUILD, NEWOBJ, NEWOBJ_EX, PERSID, BINPERSID after a harmless prefix
    data = b"\x80\x05" + b"))" + opcode + b"."
    with pytest.raises(ngser.UnsafeLoadError, match="opcode"):
        ngser.loads(data)


def test_a_memo_get_cannot_make_two_arrays_share_one_buffer() -> None:
    data = ngser.dumps({"a": np.zeros(1000)}, format="pickle")
    doc = pickle.loads(data)
    inner = _codec.unpack_value_document(doc[2], "x")
    table = inner[3]
    inner[3] = [table[0], [1, *table[0][1:]]]
    inner[1] = {"a": Ref(0), "b": Ref(1)}
    packed = _codec.pack_value_document(inner)
    buffer = doc[4][0]
    forged = pickle.dumps((doc[0], doc[1], packed, zlib.crc32(packed), [buffer, buffer]), protocol=5)
    with pytest.raises(ngser.FormatError, match="BINGET|memo|share"):
        ngser.loads(forged)


# -- work and memory out of proportion to the file ----------------------------------------------------
DEQUES = {
    "endless": {"items": Ref(1), "maxlen": 0},
    "8 GB": {"items": Ref(1), "maxlen": None},
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(DEQUES))
def test_builtin_serializers_do_no_work_beyond_their_state(fmt: str, case: str, tmp_path: Path) -> None:
    stop = 10**18 if case == "endless" else 4 * 10**8
    nodes = [ObjectNode(1, "builtins.range", 1, (0, stop, 1)), ObjectNode(0, "collections.deque", 1, DEQUES[case])]
    path = _write(fmt, tmp_path / case, Ref(0), nodes)
    assert path.stat().st_size < 20_000
    verdict = _load_limited(path, seconds=60)
    assert verdict.startswith("NGSER StateError") and "deque state must be" in verdict, verdict


@pytest.mark.parametrize(
    ("name", "state", "message"),
    [
        ("builtins.bytearray", 10**12, "bytearray state must be bytes"),
        ("builtins.range", (0, 10, 0), "step 0"),
        ("builtins.range", (0, "10", 1), "three values"),
        ("collections.OrderedDict", {"a": 1}, "list of"),
        ("builtins.slice", [1, 2, 3], "tuple of three"),
        ("collections.deque", {"items": [1], "maxlen": -1}, "maxlen"),
    ],
)
def test_builtin_states_are_checked(name: str, state: Any, message: str, tmp_path: Path) -> None:
    path = _write("msgpack", tmp_path / "b", Ref(0), [ObjectNode(0, name, 1, state)])
    with pytest.raises(ngser.StateError, match=message) as info:
        ngser.load(path)
    assert info.value.type_name == name and info.value.node == 0


COLLIDING = [k * (2**61 - 1) for k in range(1, 20_000)]  # all hash to 0


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["set", "frozenset", "dict", "OrderedDict"])
def test_keys_with_colliding_hashes_are_refused_in_linear_time(fmt: str, kind: str, tmp_path: Path) -> None:
    if kind == "dict":
        root: Any = PairsDict([(k, 1) for k in COLLIDING])
        nodes: list[ObjectNode] = []
    elif kind == "OrderedDict":
        root, nodes = Ref(0), [ObjectNode(0, "collections.OrderedDict", 1, [(k, 1) for k in COLLIDING])]
    else:
        root, nodes = _colliding_set(kind), []
    path = _write(fmt, tmp_path / kind, root, nodes)
    verdict = _load_limited(path, seconds=20)  # building it would take minutes
    assert verdict.startswith("NGSER FormatError") and "share one hash value" in verdict, verdict


def _colliding_set(kind: str) -> Any:
    """The codec's encoding of a set of :data:`COLLIDING` (a marked list), without building the
    set here, which would itself take quadratic time: only the reader ever sees it."""
    marker = _codec.SET if kind == "set" else _codec.FROZENSET
    return [msgpack.ExtType(_codec.EXT_MARK, bytes([marker])), *COLLIDING]


def test_saving_colliding_keys_is_refused_too() -> None:
    with pytest.raises(ngser.GraphError, match="share one hash value"):
        ngser.dumps({k: 1 for k in COLLIDING[:100]})


@pytest.mark.parametrize("count", [2, 1000])
def test_array_entries_must_not_share_a_payload(count: int, tmp_path: Path) -> None:
    """msgpack: many table entries at one offset turned a 4 MB file into 4 GB."""
    path = _write("msgpack", tmp_path / "a", Ref(0), [], [ArrayNode(0, np.zeros(2**19))])
    doc_bytes, payload = msgpack_parts(path.read_bytes())
    backend = get_backend("msgpack")
    graph = backend.read_path(path)
    # the same payload under `count` ids: rewrite the table through the writer's own codec
    doc = _codec.unpack_value_document(doc_bytes, "x")
    row = doc["arrays"][0]
    doc["arrays"] = [[i, *row[1:]] for i in range(count)]
    doc["root"] = [Ref(i) for i in range(count)]
    forged = msgpack_file(_codec.pack_value_document(doc), payload)
    forged_path = tmp_path / "forged.msgpack"
    forged_path.write_bytes(forged)
    assert graph.arrays[0].nbytes == 2**22
    with pytest.raises(ngser.FormatError, match="overlap"):
        ngser.load(forged_path)


# -- every failure an NgserError with a message ----------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_huge_integers_are_values_and_never_break_messages(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"big{EXTENSION[fmt]}"
    ngser.save([2**20000, -(2**20000)], path)
    assert ngser.load(path) == [2**20000, -(2**20000)]
    for bad in (2**20000, -1, 2**63):
        with pytest.raises(ngser.FormatError, match="not an integer|used twice|damaged") as info:
            ngser.decode(Graph(Ref(0), [ObjectNode(bad, "builtins.range", 1, (0, 1, 1))], []))
        assert len(str(info.value)) < 400
    if fmt == "hdf5":
        return  # HDF5 stores versions as int64: such a node cannot be written there
    too_new = _write(fmt, tmp_path / "v", Ref(0), [ObjectNode(0, "builtins.range", 2**20000, (0, 1, 1))])
    with pytest.raises(ngser.NgserError, match="integer of 20001 bits"):
        ngser.load(too_new)


@pytest.mark.parametrize("bad_id", [None, "x", 1.5, [1], 2**64, -3])
def test_array_ids_must_be_integers(bad_id: Any, tmp_path: Path) -> None:
    graph = Graph([Ref(0)], [], [ArrayNode(0, np.arange(3))], {}, {"ngser": "", "format": 1})
    data = bytearray(get_backend("pickle").write_bytes(graph))
    doc = pickle.loads(data)
    inner = _codec.unpack_value_document(doc[2], "x")
    inner[3][0][0] = bad_id
    packed = _codec.pack_value_document(inner)
    forged = pickle.dumps((doc[0], doc[1], packed, zlib.crc32(packed), doc[4]), protocol=5)
    with pytest.raises(ngser.FormatError, match="id"):
        ngser.loads(forged)


def test_two_nodes_with_one_id_and_a_forward_reference(tmp_path: Path) -> None:
    nodes = [
        ObjectNode(0, "collections.OrderedDict", 1, [("x", Ref(1))]),
        ObjectNode(1, "collections.deque", 1, {"items": [], "maxlen": None}),
        ObjectNode(1, "builtins.bytearray", 1, b"ab"),
    ]
    for fmt in FORMATS:
        path = _write(fmt, tmp_path / f"dup-{fmt}", Ref(0), nodes)
        with pytest.raises(ngser.FormatError, match="used twice"):
            ngser.load(path)


CLI_CASES = {
    "huge int": lambda tmp: _save(tmp / "big.msgpack", [2**20000]),
    "non-integer ids": lambda tmp: _write("msgpack", tmp / "ids", [Ref(0)], [ObjectNode("x", "builtins.range", 1, 0)]),
    "long chain": lambda tmp: _chain(tmp / "chain.msgpack", 200_000),
}


def _save(path: Path, value: Any) -> Path:
    ngser.save(value, path)
    return path


@ngser.register(name="tests.hostile.Link")
class Link:
    def __init__(self, nxt: Any) -> None:
        self.nxt = nxt


def _chain(path: Path, n: int) -> Path:
    head = None
    for _ in range(n):
        head = Link(head)
    return _save(path, head)


@pytest.mark.parametrize("case", sorted(CLI_CASES))
@pytest.mark.parametrize("command", [["info"], ["info", "--all"], ["verify"]])
def test_the_command_line_answers_every_file_with_exit_0_or_1(case: str, command: list[str], tmp_path: Path) -> None:
    path = CLI_CASES[case](tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "ngser", *command, str(path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode in (0, 1), out.stderr
    assert "internal error" not in out.stderr and "Traceback" not in out.stderr
    if out.returncode == 1:
        assert len(out.stderr.strip().splitlines()) == 1


def test_a_limited_load_of_a_normal_file_succeeds(tmp_path: Path) -> None:
    """The subprocess limits are not what refuses the files above."""
    path = _save(tmp_path / "fine.msgpack", {"a": np.zeros(10**6), "d": [1, 2]})
    assert _load_limited(path) == "LOADED dict"


def test_limits_are_checked_arguments() -> None:
    with pytest.raises(ngser.ArgumentError):
        ngser.Limits(expansion=0.5)
    assert ngser.Limits().expansion == 100.0
