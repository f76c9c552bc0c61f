"""Objects -> graph.

The encoder walks the objects without recursing from one object into the next:
every object with a serializer gets an integer id the first time it is met and
becomes a :class:`~ngser.graph.Ref` wherever it occurs; its state is encoded when
the walk reaches it. The node table comes out in post order (children before
parents), so a loader can build one-phase objects in table order. A reference to
an object still being encoded is a cycle; it is allowed only when that object's
serializer is two-phase. Plain containers are walked recursively up to
:data:`~ngser.graph.MAX_DEPTH` levels.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import FormatError, GraphError, NgserError, SerializerError, UnsupportedTypeError
from ..serializers import Registry, SerializerRecord, default_registry
from ._model import MAX_DEPTH, ArrayNode, Graph, format_of
from ._tables import Table
from ._tablewalk import DONE, IN_PROGRESS, NEW, Retry, TableWalk
from ._values import ATOMIC_TYPES, PLAIN_CONTAINERS, PairsDict, Ref, check_hash_spread

__all__ = ["Encoder"]

_NEW, _IN_PROGRESS, _DONE = NEW, IN_PROGRESS, DONE
_MISSING = object()


class Encoder:
    """One encoding pass (:func:`ngser.encode` runs one): ``Encoder(registry).encode(obj)``.

    ``fallback`` is the record of the serializer for objects whose class has none.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        fallback: SerializerRecord | None = None,
        substitute: Callable[[Any, SerializerRecord], Any] | None = None,
        *,
        tables: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else default_registry
        self.fallback = fallback
        #: ``substitute(obj, record) -> stand-in or None``, asked for every new object whose
        #: serializer has a ``fingerprint`` (a checkpoint stores such objects once, and puts
        #: a reference to the stored one in their place).
        self.substitute = substitute
        #: Whether many objects of one plain type may be stored as a node table
        #: (:class:`~ngser.graph.Table`; never with ``substitute``).
        self.tables = tables and substitute is None
        self._reset()

    def _reset(self) -> None:
        self._memo: dict[int, Ref] = {}
        self._keep: list[Any] = []
        self._status: list[int] = []
        self._aliases: list[Any] = []
        self._canonical_cache: dict[Any, Any] = {}
        self._nodes: dict[int, tuple[int, str, int, Any]] = {}  # waiting for their children
        self._serializers: dict[type, SerializerRecord] = {}
        #: The types met so far whose serializer has no canonical() hook: new objects of
        #: these types are numbered inline by the container loops.
        self._plain: set[type] = set()
        self._deps: list[Ref] = []
        self._current: int | None = None
        #: The node table, flat: ``[id, name, version, state, ...]`` in post order.
        self.flat: list[Any] = []
        self.arrays: list[ArrayNode] = []
        self.writers: dict[str, int] = {}

    def encode(self, obj: Any) -> Graph:
        if self.tables:
            try:
                return TableWalk(self).run(obj)
            except Retry:  # an order only the node-by-node walk can tell (see TableWalk)
                self._reset()
        root = self._value(obj, 0)
        self._walk(self._deps)
        return self.graph(root)

    def graph(self, root: Any, tables: list[Table] | None = None) -> Graph:
        """The graph of this pass, with the encoded ``root`` value."""
        graph = Graph.from_flat(root, self.flat, self.arrays, self.writers, tables=tables)
        graph.meta.update(ngser=__version__, format=format_of(graph))
        return graph

    # -- the object walk ------------------------------------------------------------
    def _walk(self, roots: list[Ref]) -> None:
        status, nodes, keep, dump = self._status, self._nodes, self._keep, self.dump_node
        finish = self.flat.extend
        stack = [ref.id for ref in reversed(roots) if status[ref.id] == _NEW]
        pop, push = stack.pop, stack.append
        while stack:
            nid = pop()
            if nid < 0:
                nid = ~nid
                status[nid] = _DONE
                finish(nodes.pop(nid))
                continue
            if status[nid] != _NEW:
                continue
            status[nid] = _IN_PROGRESS
            node, deps = dump(nid, keep[nid])
            todo = None
            for ref in deps:  # the children not finished yet
                if status[ref.id] != _DONE:
                    if todo is None:
                        todo = [ref.id]
                    else:
                        todo.append(ref.id)
            if todo is None:  # every child is finished: so is this node
                status[nid] = _DONE
                finish(node)
                continue
            nodes[nid] = node
            push(~nid)
            for dep in reversed(todo):
                if status[dep] == _NEW:
                    push(dep)
                elif not self._two_phase(dep):  # in progress: a cycle back to an ancestor
                    raise GraphError(self._cycle_message(dep))

    def dump_node(self, nid: int, obj: Any) -> tuple[tuple[int, str, int, Any], list[Ref]]:
        """Node ``nid`` (``obj``) and the references its state holds, in order."""
        serializer = self._serializers[type(obj)]
        self._current = nid
        deps: list[Ref] = []
        self._deps = deps
        try:
            raw = serializer.dump(obj)
        except NgserError as exc:
            raise exc.locate(node=nid, type_name=serializer.name) from None
        except Exception as exc:
            raise SerializerError(
                f"the serializer of {serializer.name!r} failed to dump an object of type "
                f"{type(obj).__qualname__} (node {nid}): {type(exc).__name__}: {exc}",
                node=nid,
                type_name=serializer.name,
            ) from exc
        state = self._dict(raw, 1) if type(raw) is dict else self._value(raw, 0)
        return (nid, serializer.name, serializer.version, state), deps

    @property
    def _owner(self) -> str:
        """Where the encoder is, for error messages (built only when one is raised)."""
        nid = self._current
        if nid is None:
            return "the root value"
        return f"{self._serializer_of(nid).name!r} (node {nid})"

    def _serializer_of(self, nid: int) -> SerializerRecord:
        return self._serializers[type(self._keep[nid])]

    def _two_phase(self, nid: int) -> bool:
        return self._serializer_of(nid).two_phase

    def _cycle_message(self, nid: int) -> str:
        name = self._serializer_of(nid).name
        return (
            f"cannot save a cycle through {name!r} (node {nid}), reached again from {self._owner}: its "
            "serializer rebuilds it from complete state (one-phase load), so nothing can refer to it before it "
            "exists. Break the cycle, or give the serializer create() and fill() so it is built in two phases."
        )

    # -- values -----------------------------------------------------------------------
    def _value(self, v: Any, depth: int) -> Any:
        t = type(v)
        if t in ATOMIC_TYPES:
            return v
        ref = self._memo.get(id(v))
        if ref is not None:  # an object or array met before (live objects never share an id)
            self._deps.append(ref)
            return ref
        if t not in PLAIN_CONTAINERS:
            if t is np.ndarray:
                return self._array(v)
            if isinstance(v, np.generic):
                if v.dtype.hasobject:
                    raise UnsupportedTypeError(f"numpy object scalars cannot be saved (in {self._owner})")
                return v
            return self._object(v)
        if depth >= MAX_DEPTH:
            raise GraphError(
                f"plain containers are nested more than {MAX_DEPTH} levels deep in {self._owner} (or a container "
                "contains itself); ngser keeps lists, dicts and tuples as values. Flatten the data or wrap the "
                "levels in registered objects, which may be nested without limit."
            )
        depth += 1
        if t is list:
            return self._list(v, depth)
        if t is dict:
            return self._dict(v, depth)
        if t is tuple:
            return tuple([x if type(x) in ATOMIC_TYPES else self._value(x, depth) for x in v])
        _check_spread(v, self._owner)  # a file holding it would be refused on load
        return t(x if type(x) in ATOMIC_TYPES else self._value(x, depth) for x in v)

    def _dict(self, v: dict[Any, Any], depth: int) -> Any:
        out: dict[Any, Any] = {}
        memo, deps, plain, keep = self._memo, self._deps, self._plain, self._keep
        plain_keys = True
        for key, x in v.items():
            tx = type(x)
            if tx not in ATOMIC_TYPES:
                ref = memo.get(id(x))
                if ref is not None:  # an object or array met before (live objects never share an id)
                    x = ref
                elif tx in plain:  # a new object of a known type (inlined _object)
                    ref = memo[id(x)] = Ref(len(keep))
                    keep.append(x)
                    self._status.append(_NEW)
                    x = ref
                elif tx in self._serializers:
                    x = self._object(x)
                    ref = None
                elif tx is np.ndarray:
                    x = self._array(x, key)
                else:
                    x = self._value(x, depth)
                if ref is not None:
                    deps.append(ref)
            if type(key) is not str:
                plain_keys = False
                key = key if type(key) in ATOMIC_TYPES else self._value(key, depth)
            out[key] = x
        if plain_keys:
            return out
        _check_spread(v, self._owner)
        return PairsDict(list(out.items()))

    def many(self, v: list[Any], depth: int, key: Any = None, owners: list[int] | None = None) -> list[Any]:
        """The values of a long list, encoded (a table column: ``owners[i]`` holds ``v[i]``
        under ``key``). One memo lookup per value at C speed; new objects of types met before
        are numbered together; everything else goes through :meth:`_value`. Each reference in
        ``v`` is added to the dependencies exactly once (as :meth:`_list` adds them)."""
        if set(map(type, v)) <= ATOMIC_TYPES:  # numbers, strings: the values themselves
            return list(v)
        memo, deps = self._memo, self._deps
        out: list[Any] = list(map(memo.get, map(id, v), repeat(_MISSING)))
        if not memo or set(map(id, out)) == {id(_MISSING)}:  # nothing met before (a new list of new objects)
            missing: Any = range(len(v))
            new = v
        else:
            missing = [i for i, x in enumerate(out) if x is _MISSING]
            deps.extend([ref for ref in out if ref is not _MISSING])
            if not missing:
                return out
            new = [v[i] for i in missing]
        types = set(map(type, new))
        for t in types - self._plain - ATOMIC_TYPES - PLAIN_CONTAINERS:
            if t in self._serializers or t is np.ndarray or issubclass(t, np.generic):
                continue
            if self.registry.record_for_type(t) is not None or self.fallback is not None:
                self._record(t)
        if types <= self._plain:  # all objects of known types: numbered at once, in order
            keep, found = self._keep, dict(zip(map(id, new), new))  # none of them numbered yet
            start = len(keep)
            numbered = list(map(Ref, range(start, start + len(found))))
            fresh = dict(zip(found, numbered))
            memo.update(fresh)
            keep.extend(found.values())
            self._status.extend(repeat(_NEW, len(found)))
            # each new object once: the new refs themselves; else looked up in the (small) dict of new ones
            refs = numbered if len(found) == len(new) else list(map(fresh.__getitem__, map(id, new)))
            deps.extend(refs)
            if len(missing) == len(out):
                return refs
            for i, ref in zip(missing, refs):
                out[i] = ref
            return out
        for i in missing:
            x = v[i]
            if type(x) in ATOMIC_TYPES:
                out[i] = x
                continue
            known = memo.get(id(x))
            if known is not None:  # a new object met earlier in this list
                deps.append(known)
                out[i] = known
                continue
            if owners is not None:
                self._current = owners[i]
            out[i] = self._array(x, key) if type(x) is np.ndarray else self._value(x, depth)
        return out

    def _list(self, v: list[Any], depth: int) -> list[Any]:
        if len(v) >= 64:
            return self.many(v, depth)
        memo, deps, value, plain, keep = self._memo, self._deps, self._value, self._plain, self._keep
        status = self._status
        out: list[Any] = []
        append = out.append
        for x in v:
            tx = type(x)
            if tx not in ATOMIC_TYPES:
                ref = memo.get(id(x))
                if ref is None and tx in plain:  # a new object of a known type (inlined _object)
                    ref = memo[id(x)] = Ref(len(keep))
                    keep.append(x)
                    status.append(_NEW)
                if ref is not None:
                    deps.append(ref)
                    x = ref
                elif tx in self._serializers:
                    x = self._object(x)
                else:
                    x = value(x, depth)
            append(x)
        return out

    def _array(self, a: np.ndarray, key: Any = None) -> Ref:
        """A new array (the memo was checked by the caller), found under dict ``key`` if given."""
        if a.dtype.hasobject:
            raise UnsupportedTypeError(
                f"numpy arrays of dtype {a.dtype} hold Python objects and cannot be saved (in {self._owner}); "
                "convert the array to a list, or to a numeric or string dtype"
            )
        ref = self._new_ref(a, _DONE)
        owner, label = self._current, None
        if type(key) is not str:
            key = None
        elif owner is not None:
            label = f"{self._serializer_of(owner).name}/{key}"
        self.arrays.append(ArrayNode(ref.id, a, label, owner, key))
        return ref

    def _object(self, v: Any) -> Ref:
        """A new object (the memo was checked by the caller)."""
        t = type(v)
        serializer = self._serializers.get(t) or self._record(t)
        stand_in = v
        if self.substitute is not None and serializer.fingerprint is not None:
            stand_in = self.substitute(v, serializer)
            if stand_in is None:
                stand_in = v
        if stand_in is v and serializer.canonical is not None:
            stand_in = serializer.canonical(v, self._canonical_cache)
        if stand_in is not v:
            ref = self._memo.get(id(stand_in))
            if ref is None:
                ref = self._object(stand_in)
            else:
                self._deps.append(ref)
            self._memo[id(v)] = ref
            self._aliases.append(v)  # keep it alive: its id must not be reused during the pass
            return ref
        ref = self._new_ref(v, _NEW)
        self._deps.append(ref)
        return ref

    def _record(self, t: type) -> SerializerRecord:
        """The serializer of a type met for the first time (raises if it has none)."""
        serializer = self._serializer_for(t)
        self.writers[serializer.name] = serializer.version
        if serializer.canonical is None and (self.substitute is None or serializer.fingerprint is None):
            self._plain.add(t)
        return serializer

    def _serializer_for(self, t: type) -> SerializerRecord:
        record = self.registry.record_for_type(t)
        if record is None:
            record = self.fallback or self.registry.require_type(t, f"(found in {self._owner})")
        self._serializers[t] = record
        return record

    def _new_ref(self, obj: Any, status: int) -> Ref:
        """Number ``obj`` (the container loops inline this for known types, for speed)."""
        ref = self._memo[id(obj)] = Ref(len(self._keep))
        self._keep.append(obj)
        self._status.append(status)
        return ref


def _check_spread(keys: Any, owner: str) -> None:
    """Refuse to save a set or dict whose keys' hashes collide so much that loading it would be
    refused (:func:`~ngser.graph.check_hash_spread`), as an error about the object, at save time."""
    try:
        check_hash_spread(keys, f"in {owner}")
    except FormatError as exc:
        raise GraphError(f"cannot save this set or dict: {exc}") from None
