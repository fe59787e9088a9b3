"""``python -m gpuimg``: the :mod:`gpuimg.cli` command line."""

from __future__ import annotations

import sys

from gpuimg.cli import main

if __name__ == "__main__":
    sys.exit(main())
