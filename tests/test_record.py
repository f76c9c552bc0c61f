"""Each serializer is normalised once, at registration, into the record the walks read."""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

import pytest

import ngser
from ngser.serializers import FunctionSerializer, Serializer, SerializerRecord, StateSerializer, record_of


class Plain:
    pass


class WithSetstate:
    def __setstate__(self, state: Any) -> None:
        self.__dict__.update(state, restored=True)


@dataclasses.dataclass(frozen=True)
class Frozen:
    x: int


class Slotted:
    __slots__ = ("a",)


class OnePhase(Serializer):
    name = "tests.OnePhase"
    types = (Plain,)

    def dump(self, obj: Any) -> Any:
        return {}

    def load(self, state: Any) -> Any:
        return Plain()


class TwoPhase(Serializer):
    name = "tests.TwoPhase"
    types = (Plain,)

    def dump(self, obj: Any) -> Any:
        return {}

    def create(self) -> Any:
        return Plain()

    def fill(self, obj: Any, state: Any) -> None:
        obj.filled = True


def test_the_default_serializer_gets_c_level_callables() -> None:
    record = record_of(StateSerializer(Plain, "tests.Plain"))
    assert isinstance(record.dump, operator.attrgetter) and record.two_phase and record.load is None
    assert record.fills_dict and record.pickle_build
    obj = record.create()  # type: ignore[misc]
    assert type(obj) is Plain and record.dump(obj) is obj.__dict__


def test_frozen_dataclasses_are_filled_like_pickle_fills_them() -> None:
    record = record_of(StateSerializer(Frozen, "tests.Frozen"))
    assert record.fills_dict  # no __setstate__, no slots: BUILD updates __dict__, bypassing __setattr__
    registry = ngser.Registry()
    registry.add(StateSerializer(Frozen, "tests.Frozen"))
    assert ngser.loads(ngser.dumps([Frozen(3)], registry=registry), registry=registry) == [Frozen(3)]


@pytest.mark.parametrize("cls", [WithSetstate, Slotted])
def test_classes_with_their_own_state_protocol_are_not_filled_by_dict_update(cls: type) -> None:
    record = record_of(StateSerializer(cls, "tests.Custom"))
    assert not record.fills_dict
    assert record.two_phase and record.pickle_build  # pickle's BUILD restores them as fill() does
    if cls is Slotted:
        assert not isinstance(record.dump, operator.attrgetter)


def test_function_serializers_call_the_users_functions_directly() -> None:
    def dump(obj: Plain) -> Any:
        return [1]

    def load(state: Any) -> Plain:
        return Plain()

    record = record_of(FunctionSerializer(Plain, "tests.F", dump=dump, load=load))
    assert record.dump is dump and record.load is load and not record.two_phase
    two = record_of(FunctionSerializer(Plain, "tests.G", dump=dump))
    assert two.dump is dump and two.two_phase and two.fills_dict


def test_serializer_subclasses_are_one_or_two_phase_by_what_they_define() -> None:
    one, two = record_of(OnePhase()), record_of(TwoPhase())
    assert not one.two_phase and one.create is None and one.fill is None
    assert two.two_phase and two.load is None and not two.fills_dict and not two.pickle_build
    built = two.build({})
    assert type(built) is Plain and built.filled


def test_a_custom_fill_on_the_default_serializer_is_respected() -> None:
    class Filling(StateSerializer):
        def fill(self, obj: Any, state: Any) -> None:
            obj.__dict__.update(state, via_fill=True)

    record = record_of(Filling(Plain, "tests.Filling"))
    assert not record.fills_dict and not record.pickle_build
    registry = ngser.Registry()
    registry.add(Filling(Plain, "tests.Filling"))
    obj = Plain()
    obj.x = 1  # type: ignore[attr-defined]
    out = ngser.loads(ngser.dumps(obj, registry=registry), registry=registry)
    assert out.__dict__ == {"x": 1, "via_fill": True}


@pytest.mark.parametrize(
    ("name", "version", "match"),
    [("", 1, "non-empty string name"), ("x.Y", 0, "version must be an int"), ("x.Y", True, "version must be")],
)
def test_invalid_serializers_are_refused_when_registered(name: str, version: Any, match: str) -> None:
    serializer = StateSerializer(Plain, name, 1)
    serializer.version = version
    with pytest.raises(ngser.RegistrationError, match=match):
        ngser.Registry().add(serializer)


def test_the_registry_holds_records_and_hands_out_serializers() -> None:
    registry = ngser.Registry()
    serializer = TwoPhase()
    registry.add(serializer)
    record = registry.record_for_type(Plain)
    assert isinstance(record, SerializerRecord) and record.serializer is serializer
    assert registry.for_type(Plain) is serializer and registry.for_name("tests.TwoPhase") is serializer
    assert registry.record_for_name("tests.TwoPhase") is record  # normalised once, not per lookup


class Blob:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class Missing:
    """What an untrusted load builds for an optional Blob."""


class OptionalBlob(Serializer):
    """A part whose stored form runs code when built, and that a file may do without."""

    name = "tests.OptionalBlob"
    types = (Blob,)
    trusted_only = True

    def dump(self, obj: Any) -> Any:
        return {"payload": obj.payload}

    def load(self, state: Any) -> Any:
        return Blob(state["payload"])

    def load_untrusted(self, state: Any) -> Any:
        return Missing()


def test_optional_trusted_only_parts_load_as_stand_ins_without_trust(fmt: str) -> None:
    registry = ngser.Registry()
    registry.add(OptionalBlob())
    data = ngser.dumps({"blob": Blob(b"x"), "rest": [1, 2]}, format=fmt, registry=registry)
    untrusted = ngser.loads(data, registry=registry)
    assert isinstance(untrusted["blob"], Missing) and untrusted["rest"] == [1, 2]
    trusted = ngser.loads(data, registry=registry, trusted=True)
    assert isinstance(trusted["blob"], Blob) and trusted["blob"].payload == b"x"
    assert record_of(OptionalBlob()).load_untrusted is not None
    assert record_of(OnePhase()).load_untrusted is None


def test_trusted_only_parts_without_a_stand_in_are_refused(fmt: str) -> None:
    class Required(OptionalBlob):
        name = "tests.RequiredBlob"
        load_untrusted = Serializer.load_untrusted

    registry = ngser.Registry()
    registry.add(Required())
    data = ngser.dumps([Blob(b"x")], format=fmt, registry=registry)
    with pytest.raises(ngser.UnsafeLoadError, match="tests.RequiredBlob"):
        ngser.loads(data, registry=registry)
