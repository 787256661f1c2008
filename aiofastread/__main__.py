"""``python -m aiofastread bench``: the same as the ``aiofastread`` command."""

from __future__ import annotations

import sys

from aiofastread._cli import main

if __name__ == "__main__":
    sys.exit(main())
