"""The ngser command line, run as a real subprocess (python -m ngser)."""

from __future__ import annotations

import io
import os
import pickle
import pty
import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import ngser
from ngser._progress import INTERVAL, Progress
from ngser.cli import main


@ngser.register(name="tests.cli.Box")
class Box:
    def __init__(self, content: object, points: np.ndarray) -> None:
        self.content, self.points = content, points


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ngser", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    inner = Box("inner", np.arange(12.0).reshape(4, 3))
    path = tmp_path / "sample.h5"
    ngser.save({"boxes": [Box(inner, np.zeros(2)), inner], "numbers": list(range(100))}, path)
    return path


def test_info(sample: Path) -> None:
    result = run("info", str(sample))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "format:         hdf5, format version 1" in out
    assert "tests.cli.Box v1" in out
    assert "       2  tests.cli.Box" in out
    assert "float64  (4, 3)" in out and "tests.cli.Box/points" in out
    assert "boxes: list (2 items)" in out and "(shown above)" in out
    assert "abbreviated" in out  # 100 numbers do not fit in 40 lines
    full = run("info", str(sample), "--all").stdout
    assert "[99]: 99" in full and "abbreviated" not in full


@pytest.mark.parametrize("fmt", ["msgpack", "pickle", "hdf5"])
def test_convert_and_verify(sample: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"out.{fmt}"
    result = run("convert", str(sample), str(target), "--format", fmt)
    assert result.returncode == 0 and result.stderr == ""  # no progress bar without a terminal
    assert ngser.read_graph(target) == ngser.read_graph(sample)
    verified = run("verify", str(target))
    assert verified.returncode == 0
    assert verified.stdout.startswith(f"{target}: OK ({fmt}, 2 objects, 2 arrays")


def test_convert_with_compression(tmp_path: Path) -> None:
    ngser.save(np.zeros(500_000), tmp_path / "a.pkl")
    assert run("convert", str(tmp_path / "a.pkl"), str(tmp_path / "b.h5"), "--compression", "lzf").returncode == 0
    assert (tmp_path / "b.h5").stat().st_size < 200_000
    refused = run("convert", str(tmp_path / "b.h5"), str(tmp_path / "c.msgpack"), "--compression", "gzip")
    assert refused.returncode == 1 and "takes no option compression" in refused.stderr


def test_verify_reports_damage(sample: Path, tmp_path: Path) -> None:
    path = tmp_path / "damaged.msgpack"
    ngser.convert(sample, path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    result = run("verify", str(sample), str(path))
    assert result.returncode == 1
    ok, bad = result.stdout.splitlines()
    assert ok.startswith(f"{sample}: OK")
    assert bad.startswith(f"{path}: FAILED: array node") and "checksum mismatch" in bad


@pytest.mark.parametrize(
    ("command", "content", "message"),
    [
        ("info", None, "no such file"),
        ("verify", None, "no such file"),
        ("info", b"not an ngser file at all", "not an ngser file"),
        ("info", b"", "an empty file"),
        ("convert", b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, "not a readable HDF5 file"),
    ],
)
def test_errors_are_one_line_without_traceback(
    tmp_path: Path, command: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / "input.h5"
    if content is not None:
        path.write_bytes(content)
    args = [command, str(path)] + ([str(tmp_path / "out.pkl")] if command == "convert" else [])
    result = run(*args)
    assert result.returncode == 1
    text = result.stderr + result.stdout
    assert message in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1


def test_usage_errors(tmp_path: Path) -> None:
    assert run().returncode == 2
    bad = run("convert", "a.h5", "b.h5", "--compression", "zstd")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    assert run("--version").stdout.strip() == f"ngser {ngser.__version__}"
    same = run("convert", str(tmp_path / "x.h5"), str(tmp_path / "x.h5"))
    assert same.returncode == 1 and "is the source file" in same.stderr


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    ngser.save([np.ones(3_000_000), np.ones(3_000_000)], tmp_path / "big.pkl")  # 48 MB
    leader, follower = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "ngser", "convert", str(tmp_path / "big.pkl"), str(tmp_path / "big.h5")],
            stderr=follower,
            stdout=subprocess.PIPE,
            timeout=60,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    shown = b"".join(chunks).decode()
    assert process.returncode == 0
    assert "\r" in shown and f"reading {tmp_path / 'big.pkl'} ..." in shown
    assert f"writing {tmp_path / 'big.h5'} [" in shown and "of 48.0 MB" in shown
    assert f"syncing {tmp_path / 'big.h5'} to disk ..." in shown
    assert ngser.read_graph(tmp_path / "big.h5") == ngser.read_graph(tmp_path / "big.pkl")


def _run_traced(argv: list[str]) -> tuple[int, int]:
    """The exit status of the command line on ``argv`` and the peak of the memory it allocated."""
    tracemalloc.start()
    try:
        status = main(argv)
        return status, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("suffix", [".msgpack", ".h5", ".pkl"])
def test_verify_holds_one_array_at_a_time(tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Formats with an index are verified array by array: the peak is about the largest array."""
    size = 16 * 2**20
    path = tmp_path / f"many{suffix}"
    ngser.save([np.full(size // 8, float(i)) for i in range(6)], path)
    status, peak = _run_traced(["verify", str(path)])
    assert status == 0 and "every checksum matches" in capsys.readouterr().out
    assert peak < 2 * size, f"verifying 6 arrays of {size} bytes allocated {peak} bytes at once"


@pytest.mark.parametrize("suffix", [".msgpack", ".h5", ".pkl"])
def test_info_reads_no_array(tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"many{suffix}"
    ngser.save({"u": [np.full(2**20, float(i)) for i in range(6)]}, path)  # 48 MB
    status, peak = _run_traced(["info", str(path)])
    assert status == 0 and "6, 50.3 MB" in capsys.readouterr().out
    assert peak < 4 * 2**20, f"ngser info of a 48 MB file allocated {peak} bytes"


def test_progress_shows_the_bytes_on_disk_while_a_file_grows(tmp_path: Path) -> None:
    """The bar follows the file being written, not the arrays handed to the writer."""
    stream = io.StringIO()
    progress = Progress(stream, enabled=True)
    path = tmp_path / "growing.bin"
    chunk = os.urandom(1 << 20)
    with progress.watching(str(path), "writing x", total=4 << 20), open(path, "wb") as out:
        for _ in range(4):
            out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
            time.sleep(5 * INTERVAL)
    shares = [int(m) for m in re.findall(r"\]\s+(\d+)%", stream.getvalue())]
    assert shares[0] == 0 and shares[-1] == 99 and shares == sorted(shares)
    assert any(20 <= share <= 80 for share in shares), shares
    assert "4.2 MB of 4.2 MB" in stream.getvalue()
    progress.finish()
    assert stream.getvalue().endswith("\r\033[K")


def test_convert_says_what_it_wrote(sample: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.msgpack"
    result = run("convert", str(sample), str(target))
    assert result.returncode == 0
    assert result.stdout.startswith(f"wrote {target} (msgpack, 2 objects, 2 arrays of ")
    assert "on disk" in result.stdout


@pytest.mark.parametrize("suffix", [".msgpack", ".pkl"])
def test_verify_reports_every_damaged_part(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"two{suffix}"
    ngser.save([np.arange(10_000.0), np.ones(10_000)], path)  # arrays a pickle keeps in the file when lazy
    data = bytearray(path.read_bytes())
    first = data.find(np.arange(10_000.0).tobytes()[800:816])
    second = data.find(np.ones(10_000).tobytes()[:16], first + 16)
    assert first > 0 and second > first
    data[first] ^= 0xFF
    data[second + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    result = run("verify", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: FAILED: 2 damaged parts"
    assert len(lines) == 3 and all("checksum mismatch" in line for line in lines[1:])


def test_info_says_it_checks_no_checksums(sample: Path) -> None:
    result = run("info", str(sample))
    assert result.returncode == 0
    assert result.stdout.rstrip().splitlines()[-1].startswith("checksums:      not checked")
    assert f"ngser verify {sample}" in result.stdout


def test_messages_speak_in_the_command_lines_terms() -> None:
    from ngser.cli import _cli_terms

    assert (
        _cli_terms("cannot tell the format; pass format='msgpack', 'pickle' or 'hdf5'")
        == "cannot tell the format; pass --format msgpack, pickle or hdf5"
    )
    assert _cli_terms("Pass trusted=True to ngser.load if you trust it", "export") == "Pass --trusted if you trust it"
    assert _cli_terms("not ngser's; load it with trusted=True", "convert") == "not ngser's; pass --trusted"
    assert _cli_terms("Load it with trusted=True only", "info") == "Convert it with `ngser convert --trusted` only"
    assert "trusted=True" not in _cli_terms("Pass trusted=True to ngser.load if you trust it", "verify")


def test_convert_trusted_rewrites_a_foreign_pickle_as_an_ngser_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "plain.pkl", tmp_path / "plain.h5"
    src.write_bytes(pickle.dumps({"a": np.arange(10.0), "n": [1, 2]}))
    refused = run("convert", str(src), str(dst))
    assert refused.returncode == 1 and "pass --trusted" in refused.stderr and not dst.exists()
    info = run("info", str(src))
    assert info.returncode == 1 and "ngser convert --trusted" in info.stderr and "trusted=True" not in info.stderr
    done = run("convert", str(src), str(dst), "--trusted")
    assert done.returncode == 0 and done.stdout.startswith(f"wrote {dst} (hdf5, ")
    out = ngser.load(dst)
    assert out["n"] == [1, 2] and (out["a"] == np.arange(10.0)).all()
