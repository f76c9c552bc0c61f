"""Shared fixtures: the formats to test, and helpers that round-trip through real files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ngser
from helpers import EXTENSION
from ngser.backends import BACKENDS, available

FORMATS = [name for name in BACKENDS if name in available()]


@pytest.fixture(params=FORMATS)
def fmt(request: pytest.FixtureRequest) -> str:
    """Each format whose backend is importable."""
    return str(request.param)


@pytest.fixture
def roundtrip(fmt: str, tmp_path: Path) -> Callable[..., Any]:
    """Save to a real file in ``fmt`` and load it back."""

    def run(obj: Any, **load_options: Any) -> Any:
        path = tmp_path / f"obj{EXTENSION[fmt]}"
        ngser.save(obj, path)
        return ngser.load(path, **load_options)

    return run


@pytest.fixture
def registry() -> Iterator[ngser.Registry]:
    """A private registry, so tests can register classes without touching the default one."""
    yield ngser.Registry()
