"""The ``ngser`` command line: inspect, convert and verify files without building any object.

Usage::

    ngser info result.h5              # format, versions, object counts, structure, arrays
    ngser convert result.pkl result.h5 --compression gzip
    ngser verify result.h5 other.msgpack
    ngser export heat.h5 heat.vtkhdf  # GridFunctions for ParaView (ngser.export)
    python -m ngser info result.h5    # the same, without the script on PATH

Only the object graph is read (:func:`ngser.read_graph`), so files of NGSolve objects
can be inspected and converted where NGSolve is not installed. Exit status: 0 on
success; 1 when a file is missing, damaged, unrecognised or cannot be written (with a
one-line message on stderr, never a traceback); 2 on a usage error; 3 on an internal
error (a bug in ngser: the message asks for ``NGSER_DEBUG=1``, which shows the
traceback); 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._export import command as export_command
from ._progress import Progress
from ._progress import size_text as _size
from ._version import __version__
from .api import encode, load, read_graph_lazily, sniff_file
from .atomic import atomic_write
from .backends import format_for_path, get_backend
from .backends.pickle_format import ForeignPickleError
from .errors import NgserError, UnsafeLoadError, shown
from .graph import ArrayNode, Graph, Kind, ObjectNode, items, iter_refs, kind_of
from .serializers.ngsolve.text import TREE_NODE, expression_texts

__all__ = ["main", "describe"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args))
    except NgserError as exc:
        _error(str(exc), args.command)
        return 1
    except KeyboardInterrupt:
        _error("interrupted", args.command)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if os.environ.get("NGSER_DEBUG"):
            raise
        _error(f"internal error ({type(exc).__name__}: {exc}); rerun with NGSER_DEBUG=1 to see the traceback", "")
        return 3


def _error(message: str, command: str) -> None:
    print(f"ngser: error: {_cli_terms(message, command)}", file=sys.stderr)


#: The commands that take ``--trusted`` (they load objects); the others read only ngser's own files.
TRUSTING = ("convert", "export")
_FORMATS = re.compile(r"\bformat='(\w+)'((?:, '\w+')*)(?:,? or '(\w+)')?")
_TRUSTED = re.compile(r"\b(?:[Pp]ass|[Ll]oad it with) trusted=True(?: to ngser\.load)?")


def _cli_terms(message: str, command: str = "convert") -> str:
    """A message on one line, its Python advice in the terms of the command line's ``command``:
    ``--format``, and ``--trusted`` where the command has it (``ngser convert --trusted`` elsewhere)."""

    def formats(match: re.Match[str]) -> str:
        others = match.group(2).replace("'", "")
        last = f" or {match.group(3)}" if match.group(3) else ""
        return f"--format {match.group(1)}{others}{last}"

    def trusted(match: re.Match[str]) -> str:
        advice = "pass --trusted" if command in TRUSTING else "convert it with `ngser convert --trusted`"
        return advice.capitalize() if match.group(0)[0].isupper() else advice

    return _TRUSTED.sub(trusted, _FORMATS.sub(formats, " ".join(message.split())))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ngser", description="Inspect, convert, verify and export ngser files (msgpack, pickle, HDF5)."
    )
    parser.add_argument("--version", action="version", version=f"ngser {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = commands.add_parser("info", help="show a file's format, versions, objects, structure and arrays")
    info.add_argument("file")
    info.add_argument("--depth", type=int, default=6, help="levels of the structure to show (default 6)")
    info.add_argument("--lines", type=int, default=40, help="lines of structure to show at most (default 40)")
    info.add_argument("--all", action="store_true", help="show the whole structure and every array")
    info.set_defaults(run=_info)

    convert = commands.add_parser("convert", help="rewrite a file in another format, without building objects")
    convert.add_argument("src")
    convert.add_argument("dst")
    convert.add_argument("--format", choices=("msgpack", "pickle", "hdf5"), help="default: from DST's extension")
    convert.add_argument("--compression", choices=("gzip", "lzf"), help="compress the arrays (HDF5 only)")
    convert.add_argument(
        "--trusted",
        action="store_true",
        help="SRC may be a pickle ngser did not write (e.g. NGSolve's own): load it as pickle.load would, which "
        "runs the code it names, and save its objects; only for files you trust",
    )
    convert.set_defaults(run=_convert)

    verify = commands.add_parser("verify", help="check every checksum of one or more files")
    verify.add_argument("files", nargs="+", metavar="file")
    verify.set_defaults(run=_verify)

    export = commands.add_parser("export", help="write a file's GridFunctions as VTKHDF for ParaView (needs NGSolve)")
    export.add_argument("src", help="a saved file (any format) or a checkpoint (a series of steps)")
    export.add_argument("dst", help="the VTKHDF file to write (name it .vtkhdf for ParaView)")
    export.add_argument("--order", type=int, help="Lagrange order of the cells (default: the fields')")
    export.add_argument("--step", type=int, help="of a checkpoint, only this step (default: every step)")
    export.add_argument("--trusted", action="store_true", help="load as ngser.load(..., trusted=True)")
    export.set_defaults(run=export_command)
    return parser


# -- info --------------------------------------------------------------------------------
def _info(args: argparse.Namespace) -> int:
    from .view import FileView  # arrays stay in the file where the format allows (HDF5, msgpack)

    limit = None if args.all else args.lines
    depth = sys.maxsize if args.all else args.depth
    from .checkpoint._describe import describe_checkpoint, is_checkpoint

    if is_checkpoint(args.file):
        print(describe_checkpoint(args.file))
        return 0
    with FileView(args.file) as view:
        text = describe(view.graph, args.file, view.format, max_lines=limit, max_depth=depth)
    print(text)
    print(f"checksums:      not checked: the arrays are not read (ngser verify {args.file} checks every one)")
    return 0


def describe(
    graph: Graph, source: str, fmt: str, *, max_lines: int | None = 40, max_depth: int = 6, max_arrays: int = 20
) -> str:
    """A readable summary of ``graph``, as ``ngser info`` prints it."""
    counts = Counter(name for _, name, _, _ in graph.node_tuples())
    rows = sum(map(len, graph.tables))
    in_tables = f", {rows} of them in {len(graph.tables)} node tables" if graph.tables else ""
    total = sum(array.nbytes for array in graph.arrays)
    writers = ", ".join(f"{name} v{version}" for name, version in sorted(graph.writers.items())) or "(none)"
    lines = [
        f"file:           {source} ({_size(os.path.getsize(source))})",
        f"format:         {fmt}, format version {graph.meta.get('format')}",
        f"written by:     ngser {graph.meta.get('ngser') or '(unknown)'}",
        f"serializers:    {writers}",
        f"objects:        {graph.node_count}{in_tables}",
    ]
    lines += [f"  {count:>8}  {name}" for name, count in counts.most_common()]
    lines.append(f"arrays:         {len(graph.arrays)}, {_size(total)}")
    shown = graph.arrays if max_lines is None else graph.arrays[:max_arrays]
    lines += [
        f"  #{a.id:<6} {a.dtype!s:>10}  {_shape(a.shape):<16} {_size(a.nbytes):>10}  {a.label or ''}" for a in shown
    ]
    if len(shown) < len(graph.arrays):
        lines.append(f"  ... {len(graph.arrays) - len(shown)} more arrays (--all shows them)")
    lines.append("structure:")
    lines += _Structure(graph, max_lines, max_depth).render()
    return "\n".join(lines)


#: Lines of ``ngser info`` stop being indented further at this depth.
MAX_INDENT = 40
_CONTAINER_KINDS = (Kind.LIST, Kind.TUPLE, Kind.SET, Kind.FROZENSET, Kind.DICT, Kind.PAIRS)


class _Structure:
    """The graph drawn from the root down; each object is expanded once.

    Iterative (an explicit stack of what is still to draw), so a chain of 200,000 objects is
    drawn with ``--all`` as easily as a short one; indentation stops growing at
    :data:`MAX_INDENT` levels, and deeper lines say their level instead.
    """

    def __init__(self, graph: Graph, max_lines: int | None, max_depth: int) -> None:
        self.graph = graph
        self.nodes: dict[int, ObjectNode] = {node.id: node for node in graph.nodes}
        self.arrays: dict[int, ArrayNode] = {array.id: array for array in graph.arrays}
        self.max_lines = max_lines
        self.max_depth = max_depth
        self.lines: list[str] = []
        self.expanded: set[int] = set()
        self.cut = False
        self._todo: list[tuple[str | None, Any, int]] = []  # (key, value, depth); key None: a literal line
        self.texts = expression_texts(graph.nodes)  # CoefficientFunction trees, shown as text

    def render(self) -> list[str]:
        self._todo.append(("root", self.graph.root, 1))
        while self._todo and not (self.max_lines is not None and len(self.lines) >= self.max_lines):
            key, value, depth = self._todo.pop()
            if key is None:
                self.emit(depth, value)
            else:
                self.value(key, value, depth)
        if self._todo:
            self.cut = True
        if self.cut:
            self.lines.append("  ... (abbreviated; --all shows everything, --lines N and --depth N show more)")
        return self.lines

    def emit(self, depth: int, text: str) -> bool:
        if self.max_lines is not None and len(self.lines) >= self.max_lines:
            self.cut = True
            return False
        indent = "  " * depth if depth <= MAX_INDENT else "  " * MAX_INDENT + f"[level {depth}] "
        self.lines.append(indent + text)
        return True

    def value(self, key: str, value: Any, depth: int) -> None:
        head = f"{key}: " if key else ""
        kind = kind_of(value)
        if kind is Kind.REF:
            self.ref(head, value.id, depth)
            return
        if kind not in _CONTAINER_KINDS:
            self.emit(depth, f"{head}{_short(value)}")
            return
        pairs = items(value)
        mapping = kind in (Kind.DICT, Kind.PAIRS)
        what = f"dict ({len(pairs)} keys)" if mapping else f"{type(value).__name__} ({len(pairs)} items)"
        if self.emit(depth, f"{head}{what}") and depth < self.max_depth:
            labels = [(str(k) if kind is Kind.DICT else _short(k)) if mapping else f"[{k}]" for k, _ in pairs]
            self.items([(label, v) for label, (_, v) in zip(labels, pairs)], depth + 1)
        elif pairs and depth >= self.max_depth:
            self.cut = True

    def items(self, pairs: list[tuple[str, Any]], depth: int) -> None:
        """Draw ``pairs`` next, in order (pushed onto the stack in reverse)."""
        limit = len(pairs) if self.max_lines is None else 8
        if len(pairs) > limit:
            self.cut = True
            self._todo.append((None, f"... {len(pairs) - limit} more", depth))
        self._todo.extend((key, item, depth) for key, item in reversed(pairs[:limit]))

    def ref(self, head: str, nid: int, depth: int) -> None:
        array = self.arrays.get(nid)
        if array is not None:
            self.emit(depth, f"{head}array #{nid} {array.dtype} {_shape(array.shape)}")
            return
        node = self.nodes.get(nid)
        if node is None:
            self.emit(depth, f"{head}#{shown(nid)} (missing from the node table)")
            return
        if nid in self.expanded:
            self.emit(depth, f"{head}{node.name} #{nid} (shown above)")
            return
        self.expanded.add(nid)
        if nid in self.texts:
            self.tree(head, node, depth)
            return
        if not self.emit(depth, f"{head}{_name(node.name)} #{nid} v{shown(node.version)}") or depth >= self.max_depth:
            self.cut = self.cut or depth >= self.max_depth
            return
        if type(node.state) is dict:
            self.items([(str(k), v) for k, v in node.state.items()], depth + 1)
        else:
            self._todo.append(("state", node.state, depth + 1))

    def tree(self, head: str, node: ObjectNode, depth: int) -> None:
        """A CoefficientFunction tree as one line of text, then the other objects it uses."""
        if not self.emit(depth, f"{head}{node.name} #{node.id} = {self.texts[node.id]}") or depth >= self.max_depth:
            return
        uses, todo = [], [node]
        while todo:  # the tree's nodes are shown by the text; what they refer to is drawn below
            for ref, _ in iter_refs(todo.pop().state):
                child = self.nodes.get(ref.id)
                if child is not None and child.name == TREE_NODE and ref.id not in self.expanded:
                    self.expanded.add(ref.id)
                    todo.append(child)
                elif child is None or child.name != TREE_NODE:
                    uses.append((f"uses #{ref.id}", ref))
        self.items(list(dict.fromkeys(uses)), depth + 1)


def _name(name: Any) -> str:
    """A type name for display (one from a damaged file may not be a short string)."""
    return name if type(name) is str and len(name) <= 200 else shown(name)


def _short(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        text = f"bytes ({len(value)})" if len(value) > 24 else repr(value)
    elif isinstance(value, np.generic):
        text = f"{value.dtype.name} {shown(value)}"
    else:
        text = shown(value, 70)
    return text if len(text) <= 70 else text[:67] + "..."


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


# -- convert -----------------------------------------------------------------------------
def _convert(args: argparse.Namespace) -> int:
    fmt = args.format or format_for_path(args.dst)
    options = {"compression": args.compression} if args.compression else {}
    if os.path.abspath(args.src) == os.path.abspath(args.dst):
        raise NgserError(f"{args.dst}: is the source file; give another name to convert to")
    backend = get_backend(fmt)
    backend.check_options(options)
    progress = Progress(sys.stderr)
    progress.phase(f"reading {args.src}")
    graph, close = _source_graph(args.src, args.trusted)
    total = sum(a.nbytes for a in graph.arrays)

    def write(temp: str) -> None:
        with progress.watching(temp, f"writing {args.dst}", total):
            backend.write_path(graph, temp, **options)
        progress.phase(f"syncing {args.dst} to disk")

    try:
        atomic_write(args.dst, write)
    finally:
        close()
        progress.finish()
    print(
        f"wrote {args.dst} ({fmt}, {graph.node_count} objects, {len(graph.arrays)} arrays of "
        f"{_size(total)}; {_size(os.path.getsize(args.dst))} on disk)"
    )
    return 0


def _source_graph(path: str, trusted: bool) -> tuple[Graph, Callable[[], None]]:
    """The graph to convert: read lazily (arrays read and checked as the writer takes them), or
    with ``trusted``, for a pickle ngser did not write, that of the objects it loads to."""
    try:
        return read_graph_lazily(path)
    except (ForeignPickleError, UnsafeLoadError):
        if not trusted:
            raise
    return encode(load(path, trusted=True)), lambda: None


# -- verify ------------------------------------------------------------------------------
def _verify(args: argparse.Namespace) -> int:
    status = 0
    from .checkpoint._describe import is_checkpoint, verify_checkpoint

    for path in args.files:
        try:
            if is_checkpoint(path):
                print(f"{path}: {verify_checkpoint(path)}")
                continue
            graph, damage = _checked_graph(path)
        except NgserError as exc:
            damage, graph = [exc], None
        if damage:
            messages = [_cli_terms(str(exc), "verify") for exc in damage]
            messages = [m[len(path) + 2 :] if m.startswith(f"{path}: ") else m for m in messages]
            if len(messages) == 1:
                print(f"{path}: FAILED: {messages[0]}")
            else:
                print(f"{path}: FAILED: {len(messages)} damaged parts")
                print("\n".join(f"  {m}" for m in messages))
            status = 1
            continue
        assert graph is not None
        nbytes = sum(array.nbytes for array in graph.arrays)
        print(
            f"{path}: OK ({sniff_file(path)}, {graph.node_count} objects, {len(graph.arrays)} arrays of "
            f"{_size(nbytes)}; every checksum matches)"
        )
    return status


def _checked_graph(path: str) -> tuple[Graph, list[NgserError]]:
    """The graph of ``path`` and the damage of every array whose checksum does not match, holding
    one array in memory at a time where the format allows it (a 10 GB file does not need 10 GB
    to be verified)."""
    graph, close = read_graph_lazily(path)  # a pickle is read whole, its checksums verified on reading
    damage: list[NgserError] = []
    try:
        for array in graph.arrays:
            try:
                array.load()  # read, checked against its CRC32, and dropped
            except NgserError as exc:
                damage.append(exc)
    finally:
        if close is not None:
            close()
    return graph, damage
