"""`jleval run --ray`: the tiny model through jleval's hf backend in Ray Data actors, on a real three-node Ray
cluster on loopback (ray.cluster_utils.Cluster, our own temp dir and token; the tests stop only its processes).

Checked: the rows equal an in-process run's; --replicas 2 uses two actors; a SIGKILLed driver and an actor killed
mid-run lose nothing and write nothing twice; a node holding other weights is refused by name; bad input (an
unreachable address, --replicas 0, GPUs the cluster lacks) is one line; `--ray local` leaves no Ray process behind.
"""
from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from jleval.errors import RunError
from jleval.run import RunOptions, read_outputs, run

# not imported here: Ray reads RAY_AUTH_MODE when it is first imported, which the `cluster` fixture sets first
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed ([ray] extra)")]

TASK = "jemhopqa"
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_memory_monitor_refresh_ms": "0"}


@pytest.fixture(scope="module")
def data_dir(raw_dir, tmp_path_factory):
    from jleval.jaster.preprocess import preprocess
    from jleval.tasks import resolve_tasks

    d = tmp_path_factory.mktemp("jaster")
    preprocess(resolve_tasks(TASK), d, raw_dir=raw_dir)
    return d


@pytest.fixture(scope="module")
def homes(tiny_model, tmp_path_factory):
    """Two home folders with a model at ~/m: the tiny model in one, other weights (another seed) in the other."""
    from jleval.tiny import build_tiny_model

    base = tmp_path_factory.mktemp("homes")
    shutil.copytree(tiny_model, base / "a" / "m")
    build_tiny_model(base / "b" / "m", seed=1)
    return base / "a", base / "b"


def _processes_under(pid: int) -> list[int]:
    """Every descendant of `pid` (from /proc), so the tests touch only the processes their cluster started."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.fixture(scope="module")
def cluster(homes):
    """A head and a worker node (2 logical CPUs each) on 127.0.0.1, and a third node whose $HOME holds other
    weights at ~/m (it offers the custom resource `other`, so only the test that asks for it lands there)."""
    saved = {k: os.environ.get(k) for k in (*RAY_ENV, "RAY_AUTH_TOKEN", "RAY_TMPDIR")}
    os.environ.update(RAY_ENV)
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(16)
    temp = tempfile.mkdtemp(prefix="jl-rt-")  # short: Ray's socket paths must stay under 107 bytes
    os.environ["RAY_TMPDIR"] = temp  # where Cluster notes its address (else the host-wide /tmp/ray)
    os.makedirs(os.path.join(temp, "ray"))
    from ray.cluster_utils import Cluster

    common = {"node_ip_address": "127.0.0.1", "num_cpus": 2, "temp_dir": temp}
    c = Cluster(initialize_head=True, head_node_args={**common, "include_dashboard": False})
    c.add_node(**common)
    other = c.add_node(**{**common, "num_cpus": 1, "resources": {"other": 1}, "env_vars": {"HOME": str(homes[1])}})
    c.other_node = other
    try:
        yield c
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()  # kills the processes of these three nodes only
        shutil.rmtree(temp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _opts(model, data_dir, out, name, n=24, **backend_options) -> RunOptions:
    return RunOptions(model=str(model), backend="hf", tasks=TASK, max_num_samples=n, data_dir=data_dir, out=out,
                      run_name=name, backend_options=backend_options)


def _rows(run_dir: Path) -> list[dict]:
    return read_outputs(run_dir / "outputs" / f"{TASK}.jsonl")


def _same_fields(rows: list[dict]) -> dict:
    keep = ("key", "generation", "finish_reason", "prompt_tokens", "completion_tokens", "error")
    return {r["id"]: tuple(r[k] for k in keep) for r in rows}


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "jleval.cli", "run", *map(str, args)]


@pytest.fixture(scope="module")
def reference(tiny_model, data_dir, tmp_path_factory):
    """The in-process run (no Ray) of 60 samples: what every Ray run must reproduce."""
    res = run(_opts(tiny_model, data_dir, tmp_path_factory.mktemp("ref"), "ref", n=60))
    return _same_fields(_rows(res.run_dir))


def test_ray_rows_equal_the_in_process_run_with_one_and_two_replicas(cluster, tiny_model, data_dir, reference,
                                                                     tmp_path):
    for replicas in (1, 2):
        res = run(_opts(tiny_model, data_dir, tmp_path, f"r{replicas}", n=40, ray=cluster.address,
                        replicas=str(replicas)))
        rows = _rows(res.run_dir)
        assert _same_fields(rows) == {i: v for i, v in reference.items() if i < 40}
        assert len(rows) == 40
        manifest = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"))
        described = manifest["backend"]
        assert described["engine"] == "ray" and described["backend"] == "hf"
        assert described["replica_engine"]["engine"] == "transformers"  # what ran inside the replicas
        assert described["replica_engine"]["dtype"] == described["dtype"] == "float32"
        assert described["replicas"] == replicas
        assert len(described["rows_per_replica"]) == replicas  # both actors did work
        assert sum(described["rows_per_replica"].values()) == 40
        assert manifest["sessions"][-1]["backend_options"] == {"ray": cluster.address, "replicas": str(replicas)}
        assert manifest["settings"]["backend"] == "hf"  # the cache identity is the engine, not the layout
    # a Ray run resumes (all from the cache) without Ray, and vice versa the cache keys are the same
    again = run(_opts(tiny_model, data_dir, tmp_path, "r2", n=40))
    assert again.counts[TASK] == {"total": 40, "cached": 40, "generated": 0, "errors": 0}


def _start_until_first_row(args, out: Path, **popen) -> subprocess.Popen:
    """Start `jleval run ARGS` and return once its first row is on disk (the run still going)."""
    proc = subprocess.Popen(_cli(*args), **popen)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not (
            out.is_file() and out.read_bytes().count(b"\n") >= 1):
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished (or failed) before it could be interrupted"
    return proc


def test_driver_sigkill_then_resume_loses_and_duplicates_nothing(cluster, tiny_model, data_dir, reference,
                                                                tmp_path):
    args = [tiny_model, "--backend", "hf", "--tasks", TASK, "--max-num-samples", "60", "--data-dir", data_dir,
            "--out", tmp_path, "--run-name", "k", "--no-score", "--ray", cluster.address, "--replicas", "2"]
    out = tmp_path / "k" / "outputs" / f"{TASK}.jsonl"
    proc = _start_until_first_row(args, out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = len(read_outputs(out))
    assert 1 <= first < 60
    res = run(_opts(tiny_model, data_dir, tmp_path, "k", n=60, ray=cluster.address, replicas="2"))  # the same run
    assert res.counts[TASK] == {"total": 60, "cached": first, "generated": 60 - first, "errors": 0}
    rows = _rows(tmp_path / "k")
    assert sorted(x["id"] for x in rows) == list(range(60))  # nothing lost, nothing twice
    assert _same_fields(rows) == reference


def test_an_actor_killed_mid_run_is_replaced_and_no_row_is_written_twice(cluster, tiny_model, data_dir,
                                                                          reference, tmp_path):
    args = [tiny_model, "--backend", "hf", "--tasks", TASK, "--max-num-samples", "60", "--data-dir", data_dir,
            "--out", tmp_path, "--run-name", "a", "--no-score", "--ray", cluster.address, "--replicas", "2"]
    out = tmp_path / "a" / "outputs" / f"{TASK}.jsonl"
    proc = _start_until_first_row(args, out, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    raylets = [n.all_processes["raylet"][0].process.pid for n in [cluster.head_node, *cluster.worker_nodes]]
    actors = [p for r in raylets for p in _processes_under(r) if "_Engine" in _cmdline(p)]  # up and busy
    assert actors, "no actor process was found busy to kill"
    os.kill(actors[0], signal.SIGKILL)
    written_at_kill = len(read_outputs(out))
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert written_at_kill < 60, "the run had finished before the kill"
    rows = _rows(tmp_path / "a")
    assert sorted(x["id"] for x in rows) == list(range(60))
    assert _same_fields(rows) == reference


def test_a_node_with_other_weights_at_the_model_path_is_refused(cluster, homes, data_dir, tmp_path,
                                                                monkeypatch):
    from jleval.backends.ray import RayBackend
    from jleval.run import model_identity_of

    monkeypatch.setenv("HOME", str(homes[0]))  # the driver sees the tiny model at ~/m, the `other` node not
    opts = _opts("~/m", data_dir, tmp_path, "o", n=4)
    backend = RayBackend("hf", "~/m", address=cluster.address, replicas=1,
                         expected_identity=model_identity_of(opts, "hf"), ray_remote_args={"resources": {"other": 1}})
    with pytest.raises(RunError, match=r"the Ray node 127\.0\.0\.1 \(pid \d+\) holds a different model at '~/m'"):
        run(opts, backend=backend)
    backend.close()
    assert _rows(tmp_path / "o") == []  # nothing from the other weights was written


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, r.stderr
    for needle in needles:
        assert needle in " ".join(r.stderr.split()), r.stderr


def test_bad_ray_input_is_one_line(cluster, tiny_model, data_dir, tmp_path):
    base = [tiny_model, "--backend", "hf", "--tasks", TASK, "--max-num-samples", "4", "--data-dir", data_dir,
            "--out", tmp_path, "--no-score"]
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    t0 = time.monotonic()
    r = subprocess.run(_cli(*base, "--ray", f"127.0.0.1:{free}"), capture_output=True, text=True, timeout=120)
    _one_line_error(r, f"cannot reach the Ray cluster at 127.0.0.1:{free}")
    assert time.monotonic() - t0 < 60
    r = subprocess.run(_cli(*base, "--ray", "local", "--replicas", "0"), capture_output=True, text=True, timeout=120)
    _one_line_error(r, "--replicas must be 1 or more, not 0")
    assert r.returncode == 2
    r = subprocess.run(_cli(*base, "--replicas", "2"), capture_output=True, text=True, timeout=120)
    _one_line_error(r, "--replicas needs --ray")
    r = subprocess.run(_cli(*base, "--ray", cluster.address, "--device", "cuda"), capture_output=True, text=True,
                       timeout=300)
    _one_line_error(r, "1 replica(s) need 1 GPU(s); the Ray cluster at", "has 0")
    r = subprocess.run(_cli(*base, "--ray", cluster.address, "--replicas", "9"), capture_output=True, text=True,
                       timeout=300)
    _one_line_error(r, "9 replica(s) need 10 logical CPUs")
    assert not (tmp_path / "tiny-model").exists() or not any(tmp_path.rglob("*.jsonl"))


def test_ray_local_starts_its_own_cluster_and_stops_only_it(tiny_model, data_dir, reference, tmp_path):
    from jleval.backends.ray import short_temp_dir

    run_dir = tmp_path / "l"
    args = [tiny_model, "--backend", "hf", "--tasks", TASK, "--max-num-samples", "60", "--data-dir", data_dir,
            "--out", tmp_path, "--run-name", "l", "--no-score", "--ray", "local", "--replicas", "2"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    r = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    assert _same_fields(_rows(run_dir)) == reference
    temp = short_temp_dir(run_dir)
    assert len(str(temp)) + 64 <= 107 and any(temp.glob("session_*"))  # its own temp folder, short enough
    left = [p for p in (int(x.name) for x in Path("/proc").iterdir() if x.name.isdigit()) if str(temp) in _cmdline(p)]
    assert left == [], "Ray processes of the run's own cluster are still running"
