"""The machine and software a run ran on, recorded in its manifest (`environment`): Python, platform, CPU
count, the versions of the packages that change outputs or scores, and jleval's own git commit."""
from __future__ import annotations

import contextlib
import os
import platform
import sys
from pathlib import Path
from typing import Any

#: The packages whose versions can change a generation or a score.
PACKAGES = ("torch", "transformers", "vllm", "sacrebleu", "fugashi", "unidic-lite", "mecab-python3", "ipadic",
            "rouge-score", "rapidfuzz", "rhoknp", "scipy", "numpy")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """The installed version of each package (absent ones left out), read without importing them."""
    from importlib import metadata

    pkgs = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            pkgs[name] = metadata.version(name)
    return pkgs


def git_commit() -> str | None:
    """jleval's git commit when it runs from a checkout (None from a wheel, or without git)."""
    with contextlib.suppress(Exception):
        import subprocess

        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False,
                              cwd=Path(__file__).parent).stdout.strip() or None
    return None


def capture() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "packages": package_versions(), "jleval_git_commit": git_commit()}
