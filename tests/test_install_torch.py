"""`make demo`/`make test` install torch with tools/install-torch.sh: PyTorch's CPU wheel index first, and where that
index cannot be reached, at once (no retries) the plain spec from the configured index. Run against local package
indexes (a file:// simple index holding a stand-in torch wheel), with pip's --dry-run: nothing is installed."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "install-torch.sh"


@pytest.fixture
def local_index(tmp_path) -> Path:
    """A PEP 503 simple index with one stand-in wheel, torch 2.13.0 (metadata only)."""
    wheel = tmp_path / "wheels" / "torch-2.13.0-py3-none-any.whl"
    wheel.parent.mkdir()
    info = "torch-2.13.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    page = tmp_path / "simple" / "torch" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(f'<a href="{wheel.as_uri()}">{wheel.name}</a>\n', encoding="utf-8")
    return tmp_path / "simple"


def install(cpu_index: str, default_index: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": default_index.as_uri(), "TORCH_CPU_INDEX": cpu_index,
                "TORCH_PIP_FLAGS": "--dry-run --ignore-installed --no-deps", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    t0 = time.perf_counter()
    r = subprocess.run(["sh", str(SCRIPT), sys.executable, "2.13.0"], capture_output=True, text=True, env=env,
                       timeout=120)
    return r, time.perf_counter() - t0


def test_the_cpu_index_is_used_when_reachable(local_index):
    r, _ = install(local_index.as_uri(), local_index)
    assert r.returncode == 0, r.stderr
    assert f"CPU build (a 183 MiB download, about 750 MB installed) from {local_index.as_uri()}" in r.stdout
    assert "could not be reached" not in r.stdout


def test_an_unreachable_cpu_index_falls_back_at_once(local_index):
    dead = "http://127.0.0.1:9/simple"  # the discard port: nothing listens, the connection is refused
    r, seconds = install(dead, local_index)
    assert r.returncode == 0, r.stderr
    assert f"{dead} could not be reached" in r.stdout and "installing torch==2.13.0 from the default index" in r.stdout
    assert seconds < 20  # no 5 retries with backoff (pip's default) before the fallback
