"""ngser.convert: every pair of formats gives the same graph, and no object is ever built."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ngser
from helpers import EXTENSION
from ngser.backends import BACKENDS, available

FORMATS = [name for name in BACKENDS if name in available()]


@ngser.register(name="tests.convert.Cell")
class Cell:
    def __init__(self, data: np.ndarray, parent: Any = None) -> None:
        self.data, self.parent, self.tags = data, parent, {"a": (1, 2.5), 3: {None, "x"}}


def _content() -> Any:
    root = Cell(np.arange(50_000, dtype=np.float32).reshape(500, 100))
    child = Cell(np.array(["s", "tt"]), root)
    return {
        "cells": [root, child, child],
        "values": [None, True, 2**70, -0.0, 1 - 2j, b"\x00", np.float16(3)],
        "arrays": [np.asfortranarray(np.ones((30, 4))), np.zeros((0, 3)), np.array(7)],
    }


@pytest.mark.parametrize("dst", FORMATS)
@pytest.mark.parametrize("src", FORMATS)
def test_every_pair_round_trips_to_the_same_graph(tmp_path: Path, src: str, dst: str) -> None:
    source, target = tmp_path / f"src{EXTENSION[src]}", tmp_path / f"dst{EXTENSION[dst]}"
    ngser.save(_content(), source)
    ngser.convert(source, target)
    assert ngser.read_graph(target) == ngser.read_graph(source)
    back = tmp_path / f"back{EXTENSION[src]}"
    ngser.convert(target, back)
    assert ngser.read_graph(back) == ngser.read_graph(source)
    out = ngser.load(target)
    assert out["cells"][1] is out["cells"][2] and out["cells"][1].parent is out["cells"][0]
    np.testing.assert_array_equal(out["cells"][0].data, _content()["cells"][0].data)


def test_format_option_overrides_extension(tmp_path: Path) -> None:
    ngser.save([1, np.arange(3)], tmp_path / "a.pkl")
    ngser.convert(tmp_path / "a.pkl", tmp_path / "b.bin", format="hdf5")
    assert (tmp_path / "b.bin").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    assert ngser.read_graph(tmp_path / "b.bin") == ngser.read_graph(tmp_path / "a.pkl")


def test_compression_passes_through(tmp_path: Path) -> None:
    ngser.save(np.zeros(1_000_000), tmp_path / "a.msgpack")
    ngser.convert(tmp_path / "a.msgpack", tmp_path / "b.h5", compression="gzip")
    assert (tmp_path / "b.h5").stat().st_size < 100_000
    with pytest.raises(ngser.ArgumentError, match="takes no option compression"):
        ngser.convert(tmp_path / "b.h5", tmp_path / "c.pkl", compression="gzip")
    assert not (tmp_path / "c.pkl").exists()


MODULE = """
import numpy as np
import ngser

@ngser.register(name="tests.convert.Secret")
class Secret:
    def __init__(self, values):
        self.values = values
        self.self_ref = self
"""


@pytest.mark.parametrize("dst", FORMATS)
def test_conversion_never_imports_the_objects_module(tmp_path: Path, dst: str) -> None:
    """A subprocess converts a file of registered objects without the module that defines them."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "secret_types.py").write_text(textwrap.dedent(MODULE))
    make = f"""
import sys, numpy as np, ngser
sys.path.insert(0, {str(package)!r})
import secret_types
ngser.save([secret_types.Secret(np.arange(10_000.0))], {str(tmp_path / "src.pkl")!r})
"""
    subprocess.run([sys.executable, "-c", make], check=True)
    target = tmp_path / f"dst{EXTENSION[dst]}"
    convert = f"""
import sys, ngser
ngser.convert({str(tmp_path / "src.pkl")!r}, {str(target)!r})
assert "secret_types" not in sys.modules, "the objects' module was imported"
try:
    ngser.load({str(target)!r})
except ngser.UnknownTypeError:
    print("unknown as expected")
"""
    result = subprocess.run([sys.executable, "-c", convert], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "unknown as expected"
    load = f"""
import sys, numpy as np, ngser
sys.path.insert(0, {str(package)!r})
import secret_types
(obj,) = ngser.load({str(target)!r})
assert obj.self_ref is obj and (obj.values == np.arange(10_000.0)).all()
"""
    subprocess.run([sys.executable, "-c", load], check=True)
