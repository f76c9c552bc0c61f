"""``python -m ngser``: the command line (see :mod:`ngser.cli`)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
