"""Dof orders that do not depend on how the mesh numbers its edges and faces.

netgen numbers the edges and faces of a mesh whose topology is built once (a mesh made from
its elements, as ngser rebuilds every mesh) by their vertices. A refined mesh keeps the edges
and faces of the coarser levels, bisected ones included, and appends the new ones
(``MeshTopology::Update`` keeps ``edge2vert``/``face2vert``): the same vertices and elements,
other edge and face numbers, so NGSolve lays out the dofs of every space in another order,
and a dof vector stored as it is comes back as another function.

A GridFunction on such a mesh is stored in the *node order* instead: every dof gets the key
``(node kind, vertices of its node, position among the node's dofs)`` (vertex: its number;
edge and face: their sorted vertex numbers; element interior: the element number; dofs on no
node: their rank), which names the same basis function on the original and on the rebuilt mesh
(NGSolve orients edge and face shape functions by the global vertex numbers, which do not
change), and the values are stored sorted by key. Loading sorts the rebuilt space's dofs the
same way and compares a digest of the keys, so a rebuilt space whose dofs do not correspond
one to one is a :class:`~ngser.StateError`, never a silently wrong vector. Dofs of edges and
faces that no element uses any more (``UNUSED_DOF``, e.g. the lowest-order HCurl dofs of
bisected edges) carry no function and are not stored.

Everything is vectorised: the dofs of every node come from NGSolve's
``CreateSmoothingBlocks`` table (built in C++, read from its text form), the vertices of the
edges from ``HCurl(order=0).CreateGradient()`` and those of the faces from one mixed
``H1``/``FacetFESpace`` matrix; the work per space is cached, so a hundred GridFunctions on one
space cost one computation.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import Any

import ngsolve
import numpy as np

from ...errors import StateError

__all__ = ["NODE_ORDER", "canonical_dofs", "checked_dof_order", "renumbered"]

#: The ``kind`` of a GridFunction's ``dof_order`` entry: values sorted by node keys.
NODE_ORDER = "nodes"
_VERTEX, _EDGE, _FACE, _CELL, _GLOBAL = 0, 1, 2, 3, 4
_DIGEST_CHARS = 32


class _Cache:
    """Values per live object (NGSolve meshes are not hashable: keyed by ``id``, dropped when
    the object dies), each with the signature it was computed for."""

    def __init__(self) -> None:
        self._data: dict[int, tuple[weakref.ref[Any], tuple[int, ...], Any]] = {}

    def get(self, obj: Any, sig: tuple[int, ...]) -> Any:
        entry = self._data.get(id(obj))
        if entry is None or entry[0]() is not obj or entry[1] != sig:
            return None
        return entry[2]

    def put(self, obj: Any, sig: tuple[int, ...], value: Any) -> None:
        key = id(obj)
        self._data[key] = (weakref.ref(obj, lambda _ref: self._data.pop(key, None)), sig, value)


#: mesh -> renumbered?
_RENUMBERED = _Cache()
#: mesh -> (edge vertices, face vertices or face elements)
_NODES = _Cache()
#: space -> (dof order, digest)
_ORDERS = _Cache()


def _signature(mesh: Any) -> tuple[int, ...]:
    """What changes when a mesh is refined in place (its topology is then rebuilt)."""
    return (int(mesh.nv), int(mesh.nedge), int(mesh.nface), int(mesh.ne), int(mesh.levels))


def _csr_rows(matrix: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # a distributed mesh assembles a ParallelMatrix: its rank-local part holds the local elements
    rows, cols, vals = getattr(matrix, "local_mat", matrix).COO()
    return (
        np.asarray(rows, dtype=np.int64),
        np.asarray(cols, dtype=np.int64),
        np.abs(np.asarray(vals, dtype=np.float64)),
    )


def _edge_vertices(mesh: Any) -> np.ndarray:
    """``(nedge, 2)`` sorted vertex numbers of every edge; ``-1`` for edges no element uses."""
    hcurl = ngsolve.HCurl(mesh, order=0)
    if int(hcurl.ndof) != int(mesh.nedge):
        raise StateError(f"HCurl(order=0) has {hcurl.ndof} dofs on a mesh of {mesh.nedge} edges")
    gradient, _ = hcurl.CreateGradient()
    pairs = _edge_pairs(getattr(gradient, "local_mat", gradient), int(mesh.nedge))
    if pairs is not None:
        return pairs
    rows, cols, vals = _csr_rows(gradient)
    keep = vals > 0.5  # the discrete gradient: -1 and +1 at the edge's two vertices
    return _incidence(rows[keep], cols[keep], int(mesh.nedge), 2)


def _edge_pairs(gradient: Any, count: int) -> np.ndarray | None:
    """The edges' sorted vertex pairs straight from the gradient's CSR arrays (NGSolve's own
    memory) when each row holds its edge's two vertices, or nothing for an edge no element
    uses: about 40 bytes an edge, where the general path makes some 150 (``None``: use that)."""
    try:
        vals, cols, indptr = (np.asarray(part) for part in gradient.CSR())
    except (AttributeError, TypeError, ValueError):
        return None
    if len(indptr) != count + 1 or (count and (indptr[0] != 0 or indptr[-1] != len(cols))):
        return None
    used = np.diff(indptr.astype(np.int64)) == 2
    if len(cols) != 2 * int(used.sum()) or not np.all(np.abs(vals) > 0.5):
        return None  # a row of another length: the general path sorts it out
    out = np.full((count, 2), -1, dtype=np.int64)
    out[used] = np.sort(cols.reshape(-1, 2), axis=1)
    return out


def _face_vertices(mesh: Any) -> np.ndarray:
    """``(nface, 4)`` sorted vertex numbers of every face of a 3D mesh (``-1`` padded; all
    ``-1`` for faces no element uses): the pattern of ``int u v`` over element boundaries, ``u``
    the hat functions, ``v`` the facet indicators (positive exactly where the vertex is one of
    the face's)."""
    h1, facets = ngsolve.H1(mesh, order=1), ngsolve.FacetFESpace(mesh, order=0)
    vertex_dof = _node_dofs(h1, _VERTEX, int(mesh.nv))
    face_dof = _lowest_order_facet_dofs(facets, int(mesh.nface))
    form = ngsolve.BilinearForm(h1, facets)
    form += h1.TrialFunction() * facets.TestFunction() * ngsolve.dx(element_boundary=True)
    form.Assemble()
    rows, cols, vals = _csr_rows(form.mat)
    scale = np.zeros(int(facets.ndof))
    np.maximum.at(scale, rows, vals)
    keep = vals > 1e-8 * scale[rows]
    vertex_of = np.full(int(h1.ndof), -1, dtype=np.int64)
    vertex_of[vertex_dof[vertex_dof >= 0]] = np.flatnonzero(vertex_dof >= 0)
    face_of = np.full(int(facets.ndof), -1, dtype=np.int64)
    face_of[face_dof[face_dof >= 0]] = np.flatnonzero(face_dof >= 0)
    rows, cols = face_of[rows[keep]], vertex_of[cols[keep]]
    ok = (rows >= 0) & (cols >= 0)
    return _incidence(rows[ok], cols[ok], int(mesh.nface), 4)


def _node_dofs(fes: Any, kind: int, count: int) -> np.ndarray:
    """The one dof of every node of ``kind`` of a lowest-order helper space (``-1`` for none)."""
    rows, dofs = _table(fes, kind, count)
    out = np.full(count, -1, dtype=np.int64)
    out[rows] = dofs
    return out


def _lowest_order_facet_dofs(facets: Any, count: int) -> np.ndarray:
    """The dof of every face of ``FacetFESpace(order=0)`` (``-1`` for none): NGSolve numbers a
    facet space facet by facet, the lowest-order dofs first, skipping the faces no element has
    (a refined mesh keeps its coarse ones): face ``f`` has dof ``f``, or its rank among the
    used faces, believed when sampled faces agree with ``GetDofNrs``; else face by face
    (``FacetFESpace`` has no smoothing blocks, and ``GetDofNrs`` costs 20 microseconds a
    face: minutes for the 7.4M faces of a 3.7M-tet mesh)."""
    guess = np.arange(count, dtype=np.int64)
    if int(facets.ndof) == count and _agrees(facets, _FACE, guess, np.arange(count + 1)):
        return guess
    used = _used_faces(facets.mesh, count)  # a refined mesh keeps its coarse faces, which get no dof
    if used is not None and int(used.sum()) == int(facets.ndof):
        ranks = np.cumsum(used)
        guess = np.where(used, ranks - 1, -1)
        if _agrees(facets, _FACE, guess[used], np.concatenate(([0], ranks))):
            return guess
    return _node_dofs(facets, _FACE, count)


def _used_faces(mesh: Any, count: int) -> np.ndarray | None:
    """Which faces some element has (the faces with dofs of ``H1(order=3)``, whose smoothing
    blocks list them), or ``None`` if that table cannot be read."""
    fast = _fast_table(ngsolve.H1(mesh, order=3), _FACE, count)
    if fast is None:
        return None
    used = np.zeros(count, dtype=bool)
    used[fast[0]] = True
    return used


def _incidence(rows: np.ndarray, cols: np.ndarray, count: int, width: int) -> np.ndarray:
    """``(count, width)``: the sorted column numbers of each row, ``-1`` padded; rows with fewer
    than two entries are all ``-1`` (unused nodes)."""
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    first = np.searchsorted(rows, rows)  # start of each entry's row
    slot = np.arange(len(rows)) - first
    if len(slot) and int(slot.max()) >= width:
        raise StateError(f"a node of the mesh has more than {width} vertices")
    out = np.full((count, width), -1, dtype=np.int64)
    out[rows, slot] = cols
    out[(out >= 0).sum(axis=1) < 2] = -1
    return out


_BLOCKTYPE = {_VERTEX: "vertex", _EDGE: "edge", _FACE: "face", _CELL: "element"}
_NODE_TYPE = {_VERTEX: ngsolve.VERTEX, _EDGE: ngsolve.EDGE, _FACE: ngsolve.FACE}
#: Rows of a fast table compared with ``GetDofNrs`` before it is believed.
_SAMPLES = 64


def _dof_nrs(fes: Any, kind: int, nr: int) -> tuple[int, ...]:
    if kind == _CELL:
        dofs = fes.GetDofNrs(ngsolve.ElementId(ngsolve.VOL, nr))
    else:
        dofs = fes.GetDofNrs(ngsolve.NodeId(_NODE_TYPE[kind], nr))
    return tuple(int(d) for d in dofs if d >= 0)


def _table(fes: Any, kind: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, dofs)``: the regular dofs (free or not) of each of the ``count`` nodes of
    ``kind``, in GetDofNrs order. Fast: NGSolve's smoothing-block table of that block type,
    built in C++ and read from its text form, believed when its size and sampled rows agree
    with ``GetDofNrs`` (some spaces have a table of their own); otherwise node by node."""
    fast = _fast_table(fes, kind, count)
    if fast is not None:
        return fast
    rows: list[int] = []
    dofs: list[int] = []
    for nr in range(count):
        found = _dof_nrs(fes, kind, nr)
        rows.extend([nr] * len(found))
        dofs.extend(found)
    return np.array(rows, dtype=np.int64), np.array(dofs, dtype=np.int64)


def _fast_table(fes: Any, kind: int, count: int) -> tuple[np.ndarray, np.ndarray] | None:
    free = fes.FreeDofs()
    saved = free | free  # a copy; the table lists free dofs only, so all are free meanwhile
    free.Set()
    try:
        table = fes.CreateSmoothingBlocks(blocktype=_BLOCKTYPE[kind])
        text, nrows = str(table), len(table)
    except Exception:
        return None
    finally:
        free.Clear()
        free |= saved
    if nrows != count:
        return None
    try:
        numbers = np.fromstring(text.replace(":", " -1"), dtype=np.int64, sep=" ")  # C parser
    except (ValueError, DeprecationWarning):
        return None
    marks = np.flatnonzero(numbers == -1)
    if len(marks) != nrows or (nrows and not np.array_equal(numbers[marks - 1], np.arange(nrows))):
        return None
    is_mark = np.zeros(len(numbers), dtype=bool)
    is_mark[marks] = True
    entry = ~is_mark
    entry[marks - 1] = False
    rows, dofs = (np.cumsum(is_mark) - 1)[entry], numbers[entry]
    if not _agrees(fes, kind, dofs, np.searchsorted(rows, np.arange(count + 1))):
        return None
    return rows, dofs


def _agrees(fes: Any, kind: int, dofs: np.ndarray, starts: np.ndarray) -> bool:
    """Whether a table of the dofs of each node of ``kind`` (node ``nr``'s are
    ``dofs[starts[nr]:starts[nr + 1]]``) matches ``GetDofNrs`` on :data:`_SAMPLES` nodes spread
    over all of them."""
    count = len(starts) - 1
    for nr in np.unique(np.linspace(0, count - 1, min(count, _SAMPLES)).astype(np.int64)).tolist():
        if tuple(dofs[starts[nr] : starts[nr + 1]].tolist()) != _dof_nrs(fes, kind, nr):
            return False
    return True


def _mesh_nodes(mesh: Any) -> tuple[np.ndarray, np.ndarray]:
    sig = _signature(mesh)
    cached = _NODES.get(mesh, sig)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    edges = _edge_vertices(mesh)
    faces = _face_vertices(mesh) if int(mesh.dim) == 3 else np.zeros((0, 4), dtype=np.int64)
    _NODES.put(mesh, sig, (edges, faces))
    return edges, faces


def renumbered(mesh: Any) -> bool:
    """Whether a mesh rebuilt from its elements numbers the edges or faces of ``mesh``
    differently: after a refinement (``mesh.levels > 1``), with edges no element uses (kept by
    netgen from a coarser level), or with edges not in the order of their vertices."""
    if int(mesh.dim) not in (2, 3):
        return False
    sig = _signature(mesh)
    cached = _RENUMBERED.get(mesh, sig)
    if cached is not None:
        return bool(cached)
    result = int(mesh.levels) > 1
    if not result:
        edges = _edge_vertices(mesh)
        if (edges < 0).any():
            result = True
        elif len(edges) > 1:
            step = np.diff(edges, axis=0)
            result = not bool(np.all((step[:, 0] > 0) | ((step[:, 0] == 0) & (step[:, 1] > 0))))
    _RENUMBERED.put(mesh, sig, result)
    return result


def _keys(fes: Any, nodes: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(dofs, keys)``: the key ``[kind, a, b, c, d, position]`` of every stored dof. ``nodes``:
    the mesh's edge and face vertices when the caller has them (``ngser.mpi`` passes its own: a
    cache hit on some ranks only would leave the others alone in the collective helper spaces)."""
    mesh = fes.mesh
    dim, nv, ned, nfa = int(mesh.dim), int(mesh.nv), int(mesh.nedge), int(mesh.nface)
    edges, faces = _mesh_nodes(mesh) if nodes is None else nodes
    # the faces of a 2D mesh are its elements (a refined one keeps those of its coarser levels,
    # and spaces differ in whether they number element dofs by face or by element): element
    # rows, not face rows, there
    if dim == 2:
        nfa = 0
    counts = [(_VERTEX, nv), (_EDGE, ned)] + ([(_FACE, nfa)] if dim == 3 else [])
    parts, base = [], 0
    for kind, count in counts:
        part_rows, part_dofs = _table(fes, kind, count)
        parts.append((part_rows + base, part_dofs))
        base += count
    rows = np.concatenate([p[0] for p in parts])
    dofs = np.concatenate([p[1] for p in parts])
    # position of each entry within its row (entries come row by row, in GetDofNrs order)
    position = np.arange(len(rows)) - np.searchsorted(rows, rows)
    on_node = np.zeros(int(fes.ndof), dtype=bool)
    on_node[dofs] = True
    if not on_node.all():  # an element's row lists all its dofs: its own are those on no other node
        cell_rows, cell_dofs = _table(fes, _CELL, int(mesh.ne))
        inner = ~on_node[cell_dofs]  # only these are kept: the rest are the nodes' (5M entries for order 3)
        cell_rows, cell_dofs = cell_rows[inner] + base, cell_dofs[inner]
        rows, dofs = np.concatenate((rows, cell_rows)), np.concatenate((dofs, cell_dofs))
        position = np.concatenate((position, np.arange(len(cell_rows)) - np.searchsorted(cell_rows, cell_rows)))
    keys = np.full((len(rows), 6), -1, dtype=np.int64)
    keys[:, 5] = position
    vert = rows < nv
    keys[vert, 0], keys[vert, 1] = _VERTEX, rows[vert]
    edge = (rows >= nv) & (rows < nv + ned)
    keys[edge, 0], keys[edge, 1:3] = _EDGE, edges[rows[edge] - nv]
    face = (rows >= nv + ned) & (rows < nv + ned + nfa)
    keys[face, 0], keys[face, 1:5] = _FACE, faces[rows[face] - nv - ned]
    cell = rows >= nv + ned + nfa
    keys[cell, 0], keys[cell, 1] = _CELL, rows[cell] - nv - ned - nfa
    # a dof on several nodes (periodic spaces) takes its smallest key, whatever the numbering
    order = np.lexsort((*(keys[:, i] for i in range(5, -1, -1)), dofs))
    dofs, keys = dofs[order], keys[order]
    first = np.ones(len(dofs), dtype=bool)
    first[1:] = dofs[1:] != dofs[:-1]
    dofs, keys = dofs[first], keys[first]
    return _with_loose_dofs(fes, dofs, keys)


def _with_loose_dofs(fes: Any, dofs: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the unused dofs (``UNUSED_DOF``: on nodes no element uses, they carry no function),
    add the dofs on no node (global ones, ``NumberSpace``) keyed by their rank, and refuse dofs
    in use on nodes no element uses."""
    ndof = int(fes.ndof)
    listed = np.zeros(ndof, dtype=bool)
    listed[dofs] = True
    loose = np.flatnonzero(~listed)
    orphan = (keys[:, 0] != _GLOBAL) & (keys[:, 1] < 0)
    unused = ngsolve.COUPLING_TYPE.UNUSED_DOF
    in_use = np.array([fes.CouplingType(int(d)) != unused for d in dofs[orphan]], dtype=bool)
    if in_use.any():
        raise StateError(
            f"the space {fes.type!r} has dofs in use on edges or faces that no element uses; "
            "their values cannot be stored in an order a rebuilt mesh reproduces"
        )
    dofs, keys = dofs[~orphan], keys[~orphan]
    extra = loose[np.array([fes.CouplingType(int(d)) != unused for d in loose], dtype=bool)]
    extra_keys = np.full((len(extra), 6), -1, dtype=np.int64)
    extra_keys[:, 0], extra_keys[:, 5] = _GLOBAL, np.arange(len(extra))
    return np.concatenate((dofs, extra)), np.concatenate((keys, extra_keys))


def canonical_dofs(fes: Any) -> tuple[np.ndarray, str]:
    """``(order, digest)``: the space's dof numbers sorted by node key (the stored order), and
    a digest of the sorted keys that the rebuilt space must reproduce."""
    sig = (*_signature(fes.mesh), int(fes.ndof))
    cached = _ORDERS.get(fes, sig)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    dofs, keys = _keys(fes)
    order = np.lexsort(tuple(keys[:, i] for i in range(5, -1, -1)))
    sorted_keys = np.ascontiguousarray(keys[order], dtype="<i8")
    digest = hashlib.sha256(sorted_keys.tobytes()).hexdigest()[:_DIGEST_CHARS]
    result = (dofs[order], digest)
    _ORDERS.put(fes, sig, result)
    return result


def checked_dof_order(raw: Any, what: str) -> tuple[str, int]:
    """``(digest, count)`` of a GridFunction's ``dof_order`` entry, checked."""
    if type(raw) is not dict or raw.get("kind") != NODE_ORDER:
        raise StateError(f"{what}: dof_order must be a dict with kind {NODE_ORDER!r}")
    digest, count = raw.get("digest"), raw.get("count")
    if type(digest) is not str or len(digest) != _DIGEST_CHARS:
        raise StateError(f"{what}: dof_order.digest must be a string of {_DIGEST_CHARS} characters")
    if type(count) is not int or count < 0:
        raise StateError(f"{what}: dof_order.count must be a non-negative int")
    return digest, count
