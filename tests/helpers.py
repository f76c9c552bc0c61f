"""Test data that several test modules need, written once (tests import it as a top-level module)::

    from helpers import EXTENSION, msgpack_file, msgpack_parts
    path = tmp_path / f"data{EXTENSION[fmt]}"
    forged = msgpack_file(pack_value_document(doc), msgpack_parts(real_file)[1])

The values come from the library (:data:`ngser.backends.EXTENSIONS`, the msgpack format's
``PRELUDE``, ``MAGIC`` and ``ALIGN``), so the tests never hold a second copy of them.
"""

from __future__ import annotations

import subprocess
import sys
import zlib

from ngser.backends import EXTENSIONS
from ngser.backends.msgpack_format import ALIGN, MAGIC, PRELUDE

__all__ = ["EXTENSION", "msgpack_data_start", "msgpack_file", "msgpack_parts", "ngser_cli"]


def _first_extensions() -> dict[str, str]:
    found: dict[str, str] = {}
    for extension, name in EXTENSIONS.items():
        found.setdefault(name, extension)
    return found


#: Format name -> the file extension the tests use for it: the first that ngser lists for the
#: format (msgpack -> ``.msgpack``, pickle -> ``.pkl``, hdf5 -> ``.h5``).
EXTENSION: dict[str, str] = _first_extensions()


def msgpack_data_start(doc_len: int) -> int:
    """Where the data section starts in a msgpack file whose graph document has ``doc_len``
    bytes: after the prelude and the document, rounded up to ``ALIGN``."""
    return -(-(PRELUDE.size + doc_len) // ALIGN) * ALIGN


def msgpack_file(doc_bytes: bytes, data: bytes = b"") -> bytes:
    """A msgpack-format file: the prelude (magic, document length, CRC32 of the document,
    reserved 0), the document ``doc_bytes``, zero padding, then the data section ``data``."""
    head = PRELUDE.pack(MAGIC, len(doc_bytes), zlib.crc32(doc_bytes), 0) + bytes(doc_bytes)
    return head + bytes(msgpack_data_start(len(doc_bytes)) - len(head)) + bytes(data)


def msgpack_parts(file: bytes) -> tuple[bytes, bytes]:
    """The graph document and the data section of the msgpack file ``file`` (the prelude's
    length is trusted, nothing is checked). ``msgpack_file(*msgpack_parts(file))`` is ``file``
    again (zero-padded up to ``ALIGN`` if it has no data section)."""
    _, doc_len, _, _ = PRELUDE.unpack_from(file)
    return bytes(file[PRELUDE.size : PRELUDE.size + doc_len]), bytes(file[msgpack_data_start(doc_len) :])


def ngser_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m ngser ARGS`` in a child process, its output captured as text."""
    return subprocess.run([sys.executable, "-m", "ngser", *args], capture_output=True, text=True, timeout=timeout)
