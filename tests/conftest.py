"""Shared fixtures. Tests that need the real raw benchmark files (../shared/data/raw beside the checkout, or
$JLEVAL_RAW_DIR) skip with a clear reason when they are absent, as on a user's fresh clone; CI has them."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tiny_fixtures"]  # the session-wide `tiny_model` fixture

# tests/vllm_real/ runs against the real vLLM engine in its own venv (`make test-vllm` sets JLEVAL_REAL_VLLM=1);
# the main suite tests the vLLM backend against tests/fake_vllm instead.
collect_ignore = [] if os.environ.get("JLEVAL_REAL_VLLM") else ["vllm_real"]

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def find_raw_dir() -> Path | None:
    env = os.environ.get("JLEVAL_RAW_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data" / "raw")
    return next((p for p in candidates if (p / "MANIFEST.md").is_file()), None)


@pytest.fixture(scope="session")
def raw_dir() -> Path:
    found = find_raw_dir()
    if found is None:
        pytest.skip("real raw benchmark files not found (../shared/data/raw or $JLEVAL_RAW_DIR): "
                    "these integration tests run in CI, where they are present")
    return found


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own $JLEVAL_HOME so nothing touches the user's cache."""
    monkeypatch.setenv("JLEVAL_HOME", str(tmp_path_factory.mktemp("jleval-home")))
