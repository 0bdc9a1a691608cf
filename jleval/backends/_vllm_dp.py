"""Data parallelism for the vLLM backend: N engine processes, each on its own devices, fed contiguous slices.

vLLM's offline `LLM` refuses `data_parallel_size > 1` in one process, so each rank is a spawned process that
pins itself to its share of the devices before importing vLLM (on a GPU: CUDA_VISIBLE_DEVICES set to its
`gpus_per_rank` GPUs; on vLLM's CPU platform: VLLM_CPU_OMP_THREADS_BIND set to its share of the cores), builds
a one-rank VLLMBackend, and streams `(index, Completion)` back through a queue as each request finishes. The
workers live as long as the backend, so the engines start once per run, not once per `generate` call.

The rank processes are not daemonic: vLLM's engine starts processes of its own, which a daemonic process may
not. So the parent closes them (VLLMBackend.close, which `jleval run` calls on every path), and a rank whose
parent is gone (killed, even with SIGKILL) stops by itself.
"""
from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import queue as queue_module
from collections.abc import Iterator, Sequence
from typing import Any

from jleval.errors import BackendError, JlevalError, RunError, UsageError
from jleval.types import Completion, Request

RESUME_HINT = "completions written so far are kept; re-run the same command to resume"


def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:  # pragma: no cover
        return []


def visible_cores() -> list[str]:
    """The CPU cores this process may run on (its affinity), as vLLM's CPU platform numbers them."""
    try:
        return [str(c) for c in sorted(os.sched_getaffinity(0))]
    except AttributeError:  # pragma: no cover (not Linux)
        return [str(c) for c in range(os.cpu_count() or 1)]


def _check_enough(devices: list[str], ranks: int, per_rank: int, unit: str, hint: str) -> None:
    if len(devices) < ranks * per_rank:
        raise UsageError(f"--data-parallel-size {ranks} x {per_rank} {unit}(s) per engine needs {ranks * per_rank} "
                         f"{unit}s; {len(devices)} available", hint)


def rank_environments(platform: str | None, ranks: int, per_rank: int) -> list[dict[str, str]]:
    """The environment each rank starts with: its own devices. A UsageError when there are too few."""
    if platform == "cpu":  # vLLM's CPU platform: each rank's engine bound to its share of the cores
        cores = visible_cores()
        _check_enough(cores, ranks, per_rank, "CPU core", "lower --data-parallel-size (or --tensor-parallel-size)")
        share = len(cores) // ranks
        envs = []
        for rank in range(ranks):
            mine = cores[rank * share:(rank + 1) * share]
            step = len(mine) // per_rank  # one core list per worker of the rank's engine, "|"-separated
            groups = [",".join(mine[w * step:(w + 1) * step]) for w in range(per_rank)]
            envs.append({"VLLM_CPU_OMP_THREADS_BIND": "|".join(groups)})
        return envs
    gpus = visible_gpus()
    _check_enough(gpus, ranks, per_rank, "GPU",
                  "lower --data-parallel-size / --tensor-parallel-size, or set CUDA_VISIBLE_DEVICES")
    return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[r * per_rank:(r + 1) * per_rank])} for r in range(ranks)]


def split_balanced(requests: Sequence[Request], parts: int) -> list[list[int]]:
    """Contiguous slices of the request indices with about equal cost (prompt chars + max tokens), so each
    task's requests (which share a few-shot prefix) mostly land on the same engine."""
    costs = [len(r.prompt) + r.gen.max_tokens for r in requests]
    total = sum(costs) or 1
    slices: list[list[int]] = [[] for _ in range(parts)]
    acc = 0
    for i, cost in enumerate(costs):
        rank = min(parts - 1, int(acc * parts / total))
        slices[rank].append(i)
        acc += cost
    return slices


def _parent_alive() -> bool:
    parent = mp.parent_process()
    return parent is None or parent.is_alive()


def _next_job(inbox) -> Any:
    """The next job, or None when told to stop or when the parent is gone."""
    while True:
        try:
            return inbox.get(timeout=1.0)
        except queue_module.Empty:
            if not _parent_alive():
                return None


def _serve(rank: int, backend: Any, inbox, outbox) -> None:
    while (job := _next_job(inbox)) is not None:
        job_id, items = job
        try:
            for local, completion in backend.generate([req for _, req in items]):
                outbox.put(("done", rank, job_id, items[local][0], completion))
                if not _parent_alive():
                    return
        except JlevalError as err:
            outbox.put(("fatal", rank, type(err).__name__, err.message, err.hint))
            return
        except Exception as err:  # noqa: BLE001 - any engine failure is reported to the parent, which raises
            outbox.put(("fatal", rank, "BackendError", f"{type(err).__name__}: {err}", RESUME_HINT))
            return
        outbox.put(("end", rank, job_id))


def _worker(rank: int, env: dict[str, str], model: str, options: dict[str, Any], inbox, outbox) -> None:
    os.environ.update(env)
    from jleval.backends.vllm import VLLMBackend

    try:
        backend = VLLMBackend(model, **options)
    except JlevalError as err:
        outbox.put(("fatal", rank, type(err).__name__, err.message, err.hint))
        return
    except Exception as err:  # noqa: BLE001 (reported to the parent, which raises)
        outbox.put(("fatal", rank, "RunError", f"{type(err).__name__}: {err}", None))
        return
    outbox.put(("ready", rank, {**backend.describe(), **{k.lower(): v for k, v in env.items()}}))
    try:
        _serve(rank, backend, inbox, outbox)
    finally:
        backend.close()


class DataParallelEngines:
    def __init__(self, model: str, options: dict[str, Any], ranks: int, per_rank: int,
                 platform: str | None = "cuda", start_timeout: float = 1800.0) -> None:
        envs = rank_environments(platform, ranks, per_rank)
        ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
        self.outbox = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(ranks)]
        self.procs = []
        for rank in range(ranks):
            # not daemonic: vLLM's engine core is a child process of the rank
            proc = ctx.Process(target=_worker, args=(rank, envs[rank], model, options, self.inboxes[rank],
                                                     self.outbox), name=f"jleval-vllm-dp{rank}", daemon=False)
            proc.start()
            self.procs.append(proc)
        atexit.register(self.close)  # before multiprocessing's own exit hook, which would wait for the ranks
        self.workers: dict[int, dict[str, Any]] = {}
        self.jobs = 0
        try:
            while len(self.workers) < ranks:
                msg = self._get(start_timeout)
                if msg[0] == "fatal":
                    self._raise(msg)
                if msg[0] == "ready":
                    self.workers[msg[1]] = msg[2]
        except BaseException:
            self.close()
            raise

    def _get(self, timeout: float):
        waited = 0.0
        while True:
            try:
                return self.outbox.get(timeout=5.0)
            except queue_module.Empty:
                waited += 5.0
                dead = [p.name for p in self.procs if p.exitcode not in (0, None)]  # None: still running
                if dead:
                    raise BackendError(f"vLLM data-parallel worker(s) died: {', '.join(dead)}",
                                       RESUME_HINT) from None
                if waited >= timeout:
                    raise BackendError(f"no word from the vLLM data-parallel workers for {timeout:.0f} s",
                                       RESUME_HINT) from None

    def _raise(self, msg) -> None:
        _, rank, kind, message, hint = msg
        cls = {"UsageError": UsageError, "RunError": RunError}.get(kind, BackendError)
        raise cls(f"data-parallel rank {rank}: {message}", hint)

    def describe_workers(self) -> list[dict[str, Any]]:
        return [self.workers[r] for r in sorted(self.workers)]

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        self.jobs += 1
        job_id = self.jobs
        busy = set()
        for rank, indices in enumerate(split_balanced(requests, len(self.procs))):
            if indices:
                self.inboxes[rank].put((job_id, [(i, requests[i]) for i in indices]))
                busy.add(rank)
        while busy:
            msg = self._get(timeout=float("inf"))
            if msg[0] == "done" and msg[2] == job_id:
                yield msg[3], msg[4]
            elif msg[0] == "end" and msg[2] == job_id:
                busy.discard(msg[1])
            elif msg[0] == "fatal":
                self._raise(msg)

    def close(self) -> None:
        atexit.unregister(self.close)
        for inbox, proc in zip(self.inboxes, self.procs):
            if proc.is_alive():
                inbox.put(None)
        for proc in self.procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=10)
        self.procs = []
