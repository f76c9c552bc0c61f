"""Objects crossing processes: multiprocessing, ProcessPoolExecutor and a real dask LocalCluster."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pytest

import ngser
import ngser.distributed  # registers the dask family and hooks (before the classes below)
import ngser.shim  # routes registered classes through ngser in plain pickle
from ngser.serializers import Serializer

DUMPED: list[int] = []


@ngser.register(name="proctest.Bundle")
class Bundle:
    """A registered container: default state, two-phase (cycles allowed)."""

    def __init__(self, **items: Any) -> None:
        self.__dict__.update(items)


class Cell:
    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.owner: Any = None


class CellSerializer(Serializer):
    """A custom serializer that records in which process it dumped."""

    name = "proctest.Cell"
    types = (Cell,)

    def dump(self, obj: Cell) -> Any:
        DUMPED.append(os.getpid())
        return {"values": obj.values, "owner": obj.owner}

    def create(self) -> Cell:
        return Cell(np.empty(0))

    def fill(self, obj: Cell, state: Any) -> None:
        obj.values, obj.owner = state["values"], state["owner"]


ngser.register(CellSerializer())


def make_bundle(n: int = 1000) -> Bundle:
    values = np.arange(float(n))
    a = Cell(values)
    b = Cell(values)
    bundle = Bundle(a=a, b=b, again=a, values=values, pid=os.getpid())
    a.owner = b.owner = bundle
    return bundle


def check_bundle(bundle: Bundle) -> dict[str, Any]:
    """What survived the trip, seen in the receiving process."""
    return {
        "pid": os.getpid(),
        "from": bundle.pid,
        "types": (type(bundle).__name__, type(bundle.a).__name__),
        "a is again": bundle.a is bundle.again,
        "cycle": bundle.a.owner is bundle and bundle.b.owner is bundle,
        "shared array": bundle.a.values is bundle.b.values is bundle.values,
        "sum": float(bundle.values.sum()),
        "writeable": bool(bundle.values.flags.writeable),
    }


def roundtrip_bundle(bundle: Bundle) -> Bundle:
    """Check in the worker, then send the same objects back (plus a new one)."""
    bundle.seen = check_bundle(bundle)
    bundle.extra = bundle.a
    return bundle


def _assert_bundle(info: dict[str, Any], n: int = 1000) -> None:
    assert info["types"] == ("Bundle", "Cell")
    assert info["a is again"] and info["cycle"] and info["shared array"]
    assert info["sum"] == n * (n - 1) / 2


# -- multiprocessing and ProcessPoolExecutor ----------------------------------------------------
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_pool_keeps_identity_both_ways(method: str) -> None:
    bundles = [make_bundle(n) for n in (10, 1000)]
    DUMPED.clear()
    with multiprocessing.get_context(method).Pool(2) as pool:
        back = pool.map(roundtrip_bundle, bundles)
    assert DUMPED.count(os.getpid()) == 4  # two Cells per bundle went through CellSerializer.dump here
    for bundle, n in zip(back, (10, 1000)):
        _assert_bundle(bundle.seen, n)
        assert bundle.seen["pid"] != os.getpid()
        _assert_bundle(check_bundle(bundle), n)  # and back in this process
        assert bundle.extra is bundle.a


def test_process_pool_executor_spawn() -> None:
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        infos = list(pool.map(check_bundle, [make_bundle(), make_bundle(5)]))
    _assert_bundle(infos[0])
    _assert_bundle(infos[1], 5)
    assert all(info["pid"] != os.getpid() for info in infos)


NGSOLVE_OK = False
try:  # NGSolve over processes only when ngser can serialize NGSolve objects here
    import ngsolve as _ng
    from netgen.geom2d import unit_square as _unit_square

    _probe_mesh = _ng.Mesh(_unit_square.GenerateMesh(maxh=0.5))
    NGSOLVE_OK = ngser.loads(ngser.dumps(_probe_mesh)).ne == _probe_mesh.ne
except Exception:  # pragma: no cover - depends on the NGSolve serializers
    NGSOLVE_OK = False
needs_ngsolve = pytest.mark.skipif(not NGSOLVE_OK, reason="ngser cannot serialize NGSolve objects here")


def make_fields(maxh: float = 0.25) -> Bundle:
    import ngsolve as ng
    from netgen.geom2d import unit_square

    mesh = ng.Mesh(unit_square.GenerateMesh(maxh=maxh))
    fes = ng.H1(mesh, order=2)
    gfu = ng.GridFunction(fes)
    gfu.Set(ng.x * ng.x + 2 * ng.y)
    return Bundle(mesh=mesh, fes=fes, gfu=gfu, cf=gfu * gfu + 1, pid=os.getpid())


def check_fields(bundle: Bundle) -> dict[str, Any]:
    import ngsolve as ng

    mesh, gfu = bundle.mesh, bundle.gfu
    return {
        "pid": os.getpid(),
        "shared": gfu.space is bundle.fes and bundle.fes.mesh is mesh and gfu.space.mesh is mesh,
        "integral": ng.Integrate(gfu, mesh),  # exact: 1/3 + 1
        "cf": ng.Integrate(bundle.cf, mesh),
        "point": gfu(mesh(0.3, 0.7)),  # 0.09 + 1.4
        "ne": mesh.ne,
    }


def _assert_fields(info: dict[str, Any], reference: dict[str, Any]) -> None:
    assert info["shared"]
    assert info["ne"] == reference["ne"]
    assert abs(info["integral"] - 4 / 3) < 1e-12 and abs(info["point"] - 1.49) < 1e-12
    assert abs(info["cf"] - reference["cf"]) < 1e-12


def _install_ngsolve_shim() -> None:
    ngser.shim.install_ngsolve()


def _pickled_by_ngser(obj: Any) -> bool:
    return b"ngser.shim" in pickle.dumps(obj)


@needs_ngsolve
@pytest.mark.parametrize("route", ["ngsolve pickle", "ngser shim"])
def test_ngsolve_objects_over_a_spawned_process_pool(route: str) -> None:
    fields = make_fields()
    reference = check_fields(fields)
    shim = route == "ngser shim"
    installed = ngser.shim.install_ngsolve() if shim else []
    try:
        assert _pickled_by_ngser(fields.mesh) is shim
        context = multiprocessing.get_context("spawn")
        init = _install_ngsolve_shim if shim else None
        with ProcessPoolExecutor(1, mp_context=context, initializer=init) as pool:
            info = pool.submit(check_fields, fields).result(timeout=120)
            back = pool.submit(make_fields).result(timeout=120)  # NGSolve objects made in the worker
            assert pool.submit(_pickled_by_ngser, fields.gfu).result(timeout=60) is shim
    finally:
        for cls in installed:
            ngser.shim.uninstall(cls)
    _assert_fields(info, reference)
    assert info["pid"] != os.getpid() and back.pid != os.getpid()
    _assert_fields(check_fields(back), reference)


# -- dask.distributed -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as dask_client,
    ):
        dask_client.wait_for_workers(2, timeout=60)
        yield dask_client


def _workers(client: Any) -> tuple[str, str]:
    first, second = sorted(client.scheduler_info()["workers"])
    return first, second


def frames_on_worker() -> dict[str, Any]:
    """How dask's default serializers send a Bundle, run inside a worker process."""
    from distributed.protocol.serialize import Serialize, serialize

    bundle = make_bundle()
    header, frames = serialize(Serialize(bundle))
    return {
        "serializer": header["serializer"],
        "inner": header["sub-header"].get("serializer"),
        "frames": len(frames),
        "zero copy": np.frombuffer(frames[1], dtype=np.float64).ctypes.data == bundle.values.ctypes.data,
    }


def test_dask_sends_registered_types_as_ngser_frames_in_workers(client: Any) -> None:
    infos = client.run(frames_on_worker)
    assert len(infos) == 2
    for info in infos.values():
        # the dask family, through ngser: the graph pickle plus one frame per array, not copied
        assert info == {"serializer": "dask", "inner": None, "frames": 2, "zero copy": True}


def test_dask_moves_registered_objects_between_workers(client: Any) -> None:
    first, second = _workers(client)
    made = client.submit(make_bundle, workers=[first], pure=False)
    seen = client.submit(check_bundle, made, workers=[second], pure=False).result(timeout=60)
    _assert_bundle(seen)
    assert seen["pid"] != seen["from"] and seen["writeable"]
    dumped_on_first = client.run(lambda: len(DUMPED), workers=[first])[first]
    assert dumped_on_first >= 2  # the worker that made it sent it through CellSerializer.dump
    back = made.result(timeout=60)  # and to this process
    _assert_bundle(check_bundle(back))


def test_dask_client_with_the_ngser_family(client: Any) -> None:
    import distributed

    families = ["ngser", "dask", "pickle"]
    with distributed.Client(client.cluster, serializers=families, deserializers=families) as ngser_client:
        [remote] = ngser_client.scatter([make_bundle()], workers=[_workers(client)[0]])
        info = ngser_client.submit(check_bundle, remote, pure=False).result(timeout=60)
        back = remote.result(timeout=60)
    _assert_bundle(info)
    _assert_bundle(check_bundle(back))


@needs_ngsolve
def test_dask_moves_ngsolve_objects_between_workers(client: Any) -> None:
    first, second = _workers(client)
    reference = check_fields(make_fields())
    made = client.submit(make_fields, workers=[first], pure=False)
    info = client.submit(check_fields, made, workers=[second], pure=False).result(timeout=120)
    _assert_fields(info, reference)
    back = made.result(timeout=60)
    assert back.pid != os.getpid() != info["pid"]
    _assert_fields(check_fields(back), reference)
