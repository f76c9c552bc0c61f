"""Every Python example of the README runs as written, one after the other, in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def h5ls_r(path: Path) -> str:
    """What ``h5ls -r path`` prints (HDF5's tool is not installed here): every link depth first in
    name order, as H5Lvisit meets them, each name padded to 24 columns, then ``Group`` or
    ``Dataset {dims}``, and ``, same as <first name>`` for an object met before."""
    import h5py

    lines = ["/                        Group"]
    first: dict[int, str] = {}
    with h5py.File(path, "r") as file:

        def visit(name: str) -> None:
            obj = file[name]
            address = h5py.h5o.get_info(obj.id).addr
            kind = "Group" if isinstance(obj, h5py.Group) else "Dataset {" + ", ".join(map(str, obj.shape)) + "}"
            seen = first.setdefault(address, "/" + name)
            same = f", same as {seen}" if seen != "/" + name else ""
            lines.append(f"{'/' + name:<24} {kind if not same else kind.split(' ')[0]}{same}")

        file.visit_links(visit)
    return "\n".join(lines)


def _sizes_masked(listing: str) -> str:
    """The listing with the datasets' sizes masked (netgen versions mesh the square a little
    differently, and the node table's bytes differ) and without ``elements1d_edgenr``, which
    netgen without edge descriptors (6.2.2501) stores since its segments carry their edge
    numbers themselves (docs/ngsolve.md)."""
    listing = re.sub(r"\{[\d, ]+\}", lambda m: re.sub(r"\d+", "N", m.group(0)), listing.strip())
    return "\n".join(line for line in listing.splitlines() if "/elements1d_edgenr " not in line)


def test_the_readme_examples_run_as_written(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    script = tmp_path / "readme.py"
    script.write_text("\n".join(blocks))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "result.h5").exists() and (tmp_path / "samples.msgpack").exists()
    (shown,) = re.findall(r"```\n\$ h5ls -r result\.h5\n(.*?)```", README.read_text(), flags=re.S)
    assert _sizes_masked(shown) == _sizes_masked(h5ls_r(tmp_path / "result.h5"))
