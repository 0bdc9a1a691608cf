"""Fixtures for the tests against the real vLLM engine (`make test-vllm`; on a GPU box:
`JLEVAL_REAL_VLLM=1 python -m pytest tests/vllm_real`). There is no skipping here: in this folder a vLLM that
does not import, or the fake one, is a failure, never a silent pass.

One engine (the tiny float32 model, head_dim 64) is started once per session and shared by the tests that
drive the backend directly; the command-line tests start their own in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FAKE = HERE.parent / "fake_vllm"
# The tasks the real-engine tests run: short and long outputs, classification, QA, numbers, a long prompt.
TASKS = "jamp,jemhopqa,niilc,jcommonsenseqa,chabsa,mawps"


def _real_vllm():
    try:
        import vllm
    except Exception as err:  # noqa: BLE001 - a broken vLLM install fails in many ways: one message
        pytest.fail(f"tests/vllm_real needs the real vLLM, which does not import here: {err} "
                    "(run `make test-vllm`, which builds .venv-vllm)", pytrace=False)
    if Path(vllm.__file__).resolve().is_relative_to(FAKE):
        pytest.fail("tests/vllm_real found the fake vLLM (tests/fake_vllm) first on sys.path", pytrace=False)
    return vllm


@pytest.fixture(scope="session")
def vllm_module():
    return _real_vllm()


@pytest.fixture(scope="session")
def platform(vllm_module):
    from jleval.backends.vllm import platform_of

    found = platform_of(vllm_module)
    assert found, "vLLM imports but finds no platform to run on"
    return found


@pytest.fixture(scope="session")
def engine_options(platform):
    """Engine options for the tiny model: float32 (the hf backend's CPU dtype, so texts can be compared),
    eager mode (no compilation: the engine starts in seconds), a small GPU share where there is a GPU."""
    opts = {"dtype": "float32", "enforce_eager": True}
    if platform != "cpu":
        opts["gpu_memory_utilization"] = 0.3
    return opts


@pytest.fixture(scope="session")
def engine(tiny_model, engine_options):
    from jleval.backends.vllm import VLLMBackend

    # stats on, so that the tests can read the engine's own metrics (prefix cache hits)
    backend = VLLMBackend(str(tiny_model), **engine_options, engine_kwargs={"disable_log_stats": False})
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def data_dir(raw_dir, tmp_path_factory):
    from jleval.jaster.preprocess import preprocess
    from jleval.tasks import resolve_tasks

    d = tmp_path_factory.mktemp("jaster")
    preprocess(resolve_tasks(TASKS), d, raw_dir=raw_dir)
    return d


def cli(*args, **kwargs) -> subprocess.CompletedProcess:
    """`jleval ARGS` in a subprocess (its own session, so a test can kill it with everything it started)."""
    return subprocess.run([sys.executable, "-m", "jleval.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 600), start_new_session=True,
                          env={**os.environ, "COLUMNS": "200"}, **kwargs)


def session_processes(sid: int) -> list[int]:
    """The processes still alive in session `sid` (a command started with start_new_session=True)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive
