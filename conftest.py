"""Doctest collection imports every module of gpuimg: leave out the reader modules of clients that are
not installed (``gpuimg.monai`` subclasses MONAI's reader, so importing it needs MONAI)."""

from __future__ import annotations

import importlib.util

collect_ignore = [
    path
    for client, path in (("monai", "gpuimg/monai.py"),)
    if importlib.util.find_spec(client) is None
]
