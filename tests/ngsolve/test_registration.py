"""Lazy registration, idempotence, and plain pickle still working next to ngser."""

from __future__ import annotations

import pickle
import subprocess
import sys

import ngsolve
import pytest
from ngsolve import x, y

import ngser
from ngser.serializers import Registry, StateSerializer
from ngser.serializers.ngsolve import register_all, serializers


def test_import_ngser_does_not_import_ngsolve():
    code = (
        "import sys, ngser; ngser.dumps([1, 2]); print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('ngsolve', 'netgen', 'pyngcore')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_register_all_is_idempotent_and_respects_user_names():
    registry = Registry()
    mine = next(s for s in serializers() if s.name == "ngsolve.CF")  # registered by the user first
    registry.add(mine)
    register_all(registry)
    names = registry.names()
    register_all(registry)
    assert registry.names() == names
    assert registry.for_name("ngsolve.CF") is mine
    assert {"ngsolve.Mesh", "netgen.Mesh", "ngsolve.FESpace", "ngsolve.GridFunction", "ngsolve.Parameter"} <= set(names)


def test_subclass_lookup_picks_the_specific_serializer():
    registry = Registry()
    register_all(registry)
    assert registry.for_type(ngsolve.comp.GridFunctionD).name == "ngsolve.GridFunction"
    assert registry.for_type(ngsolve.comp.ComponentGridFunction).name == "ngsolve.ComponentGridFunction"
    assert registry.for_type(ngsolve.fem.Parameter).name == "ngsolve.Parameter"
    assert registry.for_type(ngsolve.comp.VectorH1).name == "ngsolve.FESpace"
    assert registry.for_type(ngsolve.comp.VectorValued).name == "ngsolve.VectorValued"


def test_plain_pickle_keeps_working(square, fmt):
    gfu = ngsolve.GridFunction(ngsolve.H1(square, order=2))
    gfu.Set(x * y)
    ngser.loads(ngser.dumps([gfu, x * gfu], format=fmt))  # ngser has registered its serializers by now
    g2, tree2 = pickle.loads(pickle.dumps([gfu, x * gfu], protocol=pickle.HIGHEST_PROTOCOL))
    assert type(g2) is ngsolve.GridFunction
    assert ngsolve.Integrate(tree2, g2.space.mesh) == pytest.approx(ngsolve.Integrate(x * gfu, square))


def test_forms_and_integrals_are_refused_with_why_and_what_to_save(square):
    fes = ngsolve.H1(square, order=2)
    u, v = fes.TnT()
    integrals = ngsolve.grad(u) * ngsolve.grad(v) * ngsolve.dx
    a = ngsolve.BilinearForm(fes)
    a += integrals
    f = ngsolve.LinearForm(fes)
    f += v * ngsolve.dx
    cases = [(a, "a.mat"), (f, "f.vec"), (integrals, "integrand"), (integrals[0], "integrand"), (ngsolve.dx, "dx/ds")]
    for obj, advice in cases:
        with pytest.raises(ngser.UnsupportedTypeError, match="no access") as info:
            ngser.dumps({"form": obj})
        assert advice in str(info.value) and "ngser.register" not in str(info.value)


def test_a_serializer_registered_later_wins_over_a_refusal():
    registry = Registry()

    class Thing:
        pass

    registry.refuse(Thing, "things cannot be saved; save their parts")
    with pytest.raises(ngser.UnsupportedTypeError, match="things cannot be saved"):
        ngser.dumps(Thing(), registry=registry)
    registry.add(StateSerializer(Thing, "test.Thing"))
    assert isinstance(ngser.loads(ngser.dumps(Thing(), registry=registry), registry=registry), Thing)
