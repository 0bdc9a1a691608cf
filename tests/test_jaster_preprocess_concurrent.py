"""Two `jleval preprocess` processes into one output folder at once keep each other's manifest entries: the
manifest's read-modify-write is done under a lock on the version folder, merged with what is on disk then."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _start(task: str, raw_dir: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "jleval.cli", "preprocess", "--tasks", task, "--raw-dir",
                             str(raw_dir), "--out", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow  # three real processes: ~7 s on 2 cores
def test_two_concurrent_preprocess_keep_both_manifest_entries(raw_dir, tmp_path):
    out = tmp_path / "data"
    procs = [_start(task, raw_dir, out) for task in ("jamp", "jsick")]
    for p in procs:
        output, _ = p.communicate(timeout=300)
        assert p.returncode == 0, output
    manifest = json.loads((out / "1.4.1" / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest) == {"jamp", "jsick"}
    assert manifest["jamp"]["sizes"] == {"train": 8955, "dev": 995, "test": 348}
    assert manifest["jsick"]["sizes"] == {"train": 4500, "dev": 500, "test": 4927}
    assert sorted(p.name for p in (out / "1.4.1").iterdir()) == ["evaluation", "manifest.json", "tuning"]
    # a third run finds both tasks up to date (their entries are complete)
    again = _start("jamp,jsick", raw_dir, out)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0 and "cached" in output, output
