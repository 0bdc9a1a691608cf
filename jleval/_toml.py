"""The TOML parser for task, CoT and sweep files: the standard library's on Python 3.11+, the same parser from PyPI
(tomli, a dependency there) on Python 3.10. Use it as `from jleval._toml import tomllib`."""
from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

__all__ = ["tomllib"]
