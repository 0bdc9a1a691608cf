"""Run a model's replicas on a Ray cluster (`jleval run MODEL --ray [local|auto|ADDRESS] --replicas N|auto`).

The Ray backend is one more Backend (see base.py): `generate(requests)` yields `(index, Completion)` as each
batch comes back from the cluster, so run.py writes, caches and resumes exactly as it does in one process.

How it works (Ray Data, imported only here and only when `--ray` is given):
- every request becomes one row (its index and the request as JSON: prompt or chat messages, BOS policy, and
  its own sampling settings: max_tokens, stop strings, temperature, ...), in the caller's order, which is task
  order; rows are cut into blocks of `batch_size` consecutive rows, so a batch holds one task's prompts and
  their shared few-shot prefix stays in one engine's prefix cache;
- `map_batches(_Engine, compute=ActorPoolStrategy(size=replicas), num_gpus=per_replica)` starts one actor per
  replica, each holding jleval's own vllm or hf backend (the same decoding as in one process); an actor first
  checks that the model it sees (a local folder's content digest, or the Hub id and revision) is the driver's,
  so a node holding other weights is refused with its address instead of mixing its answers in;
- the driver (this process) is the only writer of the run folder: it streams the finished batches with
  `iter_batches` and yields each row once (an index seen before, from a retried batch, is dropped). A killed
  actor is restarted by Ray and its batch retried; a killed driver loses only the batches in flight, and the
  same command resumes, on one node or a cluster alike (the cache key names the engine, not the layout).

Ray's defaults that break on real machines, and what jleval does about them:
- usage statistics: RAY_USAGE_STATS_ENABLED=0 (nothing is sent anywhere);
- a local cluster jleval starts (`--ray local`) listens on 127.0.0.1 only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0,
  `_node_ip_address`), with token authentication on (a fresh random RAY_AUTH_TOKEN in the environment, never
  written to ~/.ray), at least MIN_LOCAL_CPUS logical CPUs (so the actors cannot take every CPU and starve
  Ray Data's own tasks: the run would hang), workers at the driver's own niceness (Ray's default renices
  them to 15, so a loaded machine starves them), its memory monitor off (it would kill the actor that holds
  the model, the largest process, and Ray would reload it in a loop), and its temporary folder under the run
  folder when the path is short enough for Ray's Unix sockets (107 bytes), else a short one under /tmp;
- jleval stops only what it started: `ray.shutdown()` for its own local cluster, a disconnect from any
  other; it never runs `ray stop` (which kills every Ray process on the host).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from jleval.errors import BackendError, JlevalError, RunError, UsageError
from jleval.types import Completion, GenParams, Request

#: Logical CPUs a local cluster gets at least (Ray Data's scheduling tasks need CPUs beside the actors).
MIN_LOCAL_CPUS = 4
#: Rows per batch (one batch is what a crash can lose, and what one actor holds at a time).
DEFAULT_BATCH_SIZE = {"vllm": 256, "hf": 32}
#: Room Ray needs below its temporary folder for a socket path ("session_<date>_<pid>/sockets/plasma_store").
_RAY_SOCKET_SUFFIX = 64
_UNIX_PATH_MAX = 107
_MARK = "jleval-error:"
#: The errors an actor's JlevalError comes back as, by class name (any other: RunError).
_ERRORS: dict[str, type[JlevalError]] = {"UsageError": UsageError, "RunError": RunError, "BackendError": BackendError}


# ---- rows: a request out, a completion back (JSON, so every field survives Arrow blocks) --------------------
def request_to_json(req: Request) -> str:
    return json.dumps({"task": req.task, "sample_id": req.sample_id, "prompt": req.prompt, "gen": req.gen.to_json(),
                       "messages": req.messages, "bos": req.add_special_tokens}, ensure_ascii=False)


def request_from_json(text: str) -> Request:
    d = json.loads(text)
    gen = GenParams(**{**d["gen"], "stop": tuple(d["gen"]["stop"])})
    messages = tuple(tuple(m) for m in d["messages"]) if d["messages"] is not None else None
    return Request(task=d["task"], sample_id=d["sample_id"], prompt=d["prompt"], gen=gen, messages=messages,
                   add_special_tokens=d["bos"])


def completion_to_json(c: Completion) -> str:
    return json.dumps({"text": c.text, "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens,
                       "completion_tokens": c.completion_tokens, "latency_s": c.latency_s, "error": c.error,
                       "extra": c.extra}, ensure_ascii=False, default=str)


def completion_from_json(text: str) -> Completion:
    return Completion(**json.loads(text))


# ---- errors: a JlevalError raised in an actor comes back as itself ------------------------------------------
def _wrap(err: JlevalError) -> RuntimeError:
    payload = json.dumps({"cls": type(err).__name__, "message": err.message, "hint": err.hint})
    return RuntimeError(f"{_MARK}{payload}")


def _unwrap(err: BaseException) -> JlevalError | None:
    """The JlevalError an actor raised, from anywhere in the chain of Ray's wrappers (which keep its text)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        payload = _payload_in(str(e))
        if payload is not None:
            cls = _ERRORS.get(payload["cls"], RunError)
            return cls(payload["message"], payload["hint"])
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None


def _payload_in(text: str) -> dict[str, Any] | None:
    """The first marked error that parses (Ray's wrappers may quote it escaped; the original is plain)."""
    at = text.find(_MARK + "{")
    while at != -1:
        with contextlib.suppress(ValueError):
            payload, _ = json.JSONDecoder().raw_decode(text, at + len(_MARK))
            if isinstance(payload, dict) and {"cls", "message", "hint"} <= set(payload):
                return payload
        at = text.find(_MARK + "{", at + 1)
    return None


# ---- the actor -----------------------------------------------------------------------------------------------
class _Engine:
    """One replica: jleval's own backend for the model, after checking that this node holds the driver's model."""

    #: set on the subclass `_engine_class` makes, so the actor has no constructor arguments to lose on a restart
    config: dict[str, Any] = {}

    def __init__(self) -> None:
        import ray

        inner, model, revision = self.config["inner"], self.config["model"], self.config["revision"]
        options, expected_identity = self.config["options"], self.config["expected_identity"]
        self.where = f"{ray.util.get_node_ip_address()} (pid {os.getpid()})"
        try:
            self._check_model(model, revision, expected_identity)
            from jleval.backends import load_backend

            self.backend = load_backend(inner, model, revision=revision, **options)
        except JlevalError as err:
            raise _wrap(err) from None

    def _check_model(self, model: str, revision: str | None, expected: dict[str, Any] | None) -> None:
        if expected is None:
            return
        from jleval.backends._common import is_local_model, model_identity

        here: dict[str, Any] = (model_identity(model, revision) if is_local_model(model)
                                else {"model": model, "revision": revision})
        if here.get("local_digest") != expected.get("local_digest") or (
                "local_digest" not in expected and here != expected):
            seen = here.get("local_digest", "no such folder")[:12]
            raise RunError(f"the Ray node {self.where} holds a different model at {model!r} "
                           f"(content digest {seen}, the driver's {str(expected.get('local_digest'))[:12]})",
                           "give every node the same weights at that path (or a shared file system), or "
                           "start the cluster only on nodes that have them")

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        requests = [request_from_json(str(s)) for s in batch["req"]]
        out: list[str | None] = [None] * len(requests)
        try:
            for j, comp in self.backend.generate(requests):
                out[j] = completion_to_json(comp)
        except JlevalError as err:
            raise _wrap(err) from None
        described = "" if getattr(self, "_described", False) else json.dumps(self.backend.describe(), default=str)
        self._described = True
        return {"i": batch["i"], "out": np.array(out, dtype=object),
                "replica": np.array([self.where] * len(requests), dtype=object),
                "engine": np.array([described] + [""] * (len(requests) - 1), dtype=object)}


def _engine_class(config: dict[str, Any], base: type) -> type:
    """A subclass of `base` (an `_Engine`) carrying its settings (pickled with the class, not as actor arguments)."""
    return type(base.__name__, (base,), {"config": config, "__module__": base.__module__})


# ---- the driver's side -----------------------------------------------------------------------------------------
def parse_replicas(value: int | str | None) -> int | None:
    """`--replicas N|auto` -> N, or None for auto (one per GPU group, or one per node on CPUs)."""
    if value is None or str(value).strip().lower() == "auto":
        return None
    try:
        n = int(str(value))
    except ValueError:
        raise UsageError(f"--replicas {value!r} is not a number", "pass --replicas N (1 or more) or auto") from None
    if n < 1:
        raise UsageError(f"--replicas must be 1 or more, not {n}", "pass --replicas N (1 or more) or auto")
    return n


def short_temp_dir(run_dir: Path | None) -> Path:
    """Ray's temporary folder: `<run>/.ray` when Ray's socket paths under it fit a Unix socket path, else a
    short folder under the system's temp dir, named after the run (the same one on a resume)."""
    if run_dir is not None:
        candidate = Path(run_dir).resolve() / ".ray"
        if len(str(candidate)) + _RAY_SOCKET_SUFFIX <= _UNIX_PATH_MAX:
            return candidate
    tag = hashlib.sha256(str(Path(run_dir).resolve() if run_dir else os.getpid()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"jleval-ray-{tag}"


def _check_reachable(address: str) -> None:
    """A host:port that answers nothing fails now, in one line, not after Ray's minute of retries."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--ray {address!r} is not local, auto or HOST:PORT",
                         "e.g. --ray 10.0.0.1:6379 (the head's `ray start --head --port`), --ray auto or --ray local")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as err:
        raise RunError(f"cannot reach the Ray cluster at {address}: {err.strerror or err}",
                       "start it (`ray start --head --port PORT` on the head node), check the address and the "
                       "firewall, or use --ray local") from None


def _local_env() -> None:
    """Environment for a local cluster, set before Ray is imported (Ray reads some of it at import)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # bind to 127.0.0.1, no routable address
    os.environ.setdefault("RAY_worker_niceness", str(os.nice(0)))
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
    if "RAY_AUTH_MODE" not in os.environ:
        import secrets

        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(24))
        if "ray" in sys.modules:  # imported already: its configuration is read again from the environment
            with contextlib.suppress(Exception):
                from ray._raylet import Config  # type: ignore[attr-defined]  # private: not in ray's stub

                Config.initialize("")


def _quiet_ray() -> None:
    import logging

    for name in ("ray", "ray.data", "ray._private", "ray.data._internal"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.max_consecutive_actor_init_deaths = 0  # an actor that cannot load the model stops the run, named


class RayBackend:
    """Replicas of jleval's vllm or hf backend in Ray Data actors; see the module docstring."""

    name = "ray"

    def __init__(self, inner: str, model: str, *, address: str = "local", replicas: int | str | None = None,
                 revision: str | None = None, expected_identity: dict[str, Any] | None = None,
                 run_dir: Path | None = None, batch_size: int | None = None,
                 ray_remote_args: dict[str, Any] | None = None, engine: type = _Engine,
                 **options: Any) -> None:
        self.inner, self.model, self.revision = inner, model, revision
        self.options = self._check_options(inner, options)
        self.replicas_asked = parse_replicas(replicas)
        self.expected_identity = expected_identity
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE[self.inner]
        if self.batch_size < 1:
            raise UsageError(f"the Ray batch size must be 1 or more, not {self.batch_size}")
        self.ray_remote_args = dict(ray_remote_args or {})
        self.engine = engine  # _Engine or a subclass (benchmarks/ray_scaling.py: a simulated one)
        self.address = address or "local"
        self.temp_dir: Path | None = None
        self.started_cluster = self._connected_here = False
        self.rows_per_replica: dict[str, int] = {}
        self.replica_engine: dict[str, Any] | None = None  # the first replica's own describe(), once it has run
        self._ray = self._connect(run_dir)
        try:
            self.gpus_per_replica, self.replicas = self._layout()
        except BaseException:
            self.close()
            raise

    # ---- set-up ------------------------------------------------------------------------------------------
    @staticmethod
    def _check_options(inner: str, options: dict[str, Any]) -> dict[str, Any]:
        """The inner backend's options that are set; refused when that backend cannot run in an actor, or does
        not take one of them, or when they ask for data parallelism (Ray's replicas are that)."""
        from jleval.backends import hf, vllm
        from jleval.backends._common import check_options

        accepted = {"vllm": vllm.OPTIONS, "hf": hf.OPTIONS}.get(inner)
        if accepted is None:
            raise UsageError(f"--ray runs the model inside Ray actors: --backend {inner} cannot run there",
                             "use --backend vllm or hf (several OpenAI-compatible servers: --base-url URL1,URL2)")
        given = {k: v for k, v in options.items() if v is not None}
        if given.get("data_parallel_size", 1) != 1:
            raise UsageError("--data-parallel-size cannot be combined with --ray",
                             "with Ray, --replicas N starts N engines (on any node)")
        return check_options(inner, given, accepted - {"revision"})

    def _connect(self, run_dir: Path | None):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        local = self.address == "local"
        if local:
            _local_env()
        elif self.address != "auto":
            _check_reachable(self.address)
        try:
            import ray
        except ImportError:
            raise UsageError("--ray needs Ray Data, which is not installed here",
                             'pip install "jleval[ray]" (the same version on every node)') from None
        _quiet_ray()
        if ray.is_initialized():  # a caller (a sweep, a test) connected already: use that cluster, leave it be
            return ray
        import logging

        kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False,
                                  "include_dashboard": False}
        try:
            if local:
                self.temp_dir = short_temp_dir(run_dir)
                self.temp_dir.mkdir(parents=True, exist_ok=True)
                ray.init(num_cpus=max(MIN_LOCAL_CPUS, os.cpu_count() or 1, (self.replicas_asked or 1) + 2),
                         _node_ip_address="127.0.0.1", _temp_dir=str(self.temp_dir),
                         object_store_memory=512 * 2**20, **kwargs)
                self.started_cluster = True
            else:
                ray.init(address=self.address, **kwargs)
            self._connected_here = True
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise RunError(f"cannot connect to the Ray cluster at {self.address}: {str(err).splitlines()[0]}",
                           "check `ray status` on the head node; with token authentication, export the cluster's "
                           "RAY_AUTH_TOKEN; or use --ray local") from None
        return ray

    def _gpus_per_replica(self, cluster_gpus: float) -> tuple[float, float]:
        """The GPUs a replica's actor asks Ray for, and the GPUs the replica uses (more than the actor's with
        vLLM's own Ray executor)."""
        if self.inner == "hf":
            device = str(self.options.get("device") or "auto")
            asked = 1 if device.startswith("cuda") else 0
            per = 1 if device == "auto" and cluster_gpus > 0 else asked
            return per, per
        parallel = self._parallel()
        if self.options.get("distributed_executor_backend") == "ray":
            return 0, parallel  # vLLM's own Ray executor places the tensor x pipeline workers (maybe on several nodes)
        per = parallel if cluster_gpus > 0 or parallel > 1 else 0  # no GPU and 1 x 1: vLLM's CPU build
        return per, per

    def _layout(self) -> tuple[float, int]:
        """GPUs per replica and the number of replicas; a UsageError when the cluster cannot hold them."""
        ray = self._ray
        res = ray.cluster_resources()
        gpus, cpus = res.get("GPU", 0.0), res.get("CPU", 0.0)
        per, used = self._gpus_per_replica(gpus)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        replicas = self.replicas_asked or (int(gpus // per) if per else len(nodes)) or 1
        where = "the local Ray cluster" if self.started_cluster else f"the Ray cluster at {self.address}"
        need = replicas * used
        shortfalls = (  # (the cluster falls short, what it lacks, the fix), the first that holds is said
            (need > gpus, f"{replicas} replica(s) need {need:g} GPU(s); {where} has {gpus:g}",
             "lower --replicas or --tensor/--pipeline-parallel-size, add GPU nodes, or pass --device cpu (hf) to run "
             "on CPUs"),
            (per and not any(n.get("Resources", {}).get("GPU", 0) >= per for n in nodes),
             f"a replica needs {per:g} GPUs on one node; no node of {where} has that many",
             "for a model larger than a node add --distributed-executor-backend ray (vLLM spans the nodes), or lower "
             "--tensor-parallel-size"),
            (replicas + 1 > cpus,
             f"{replicas} replica(s) need {replicas + 1} logical CPUs (one each and one for Ray Data); {where} has "
             f"{cpus:g}", "lower --replicas, or start the nodes with more --num-cpus"),
        )
        for short, message, hint in shortfalls:
            if short:
                raise UsageError(message, hint)
        return per, replicas

    def _parallel(self) -> int:
        return int(self.options.get("tensor_parallel_size") or 1) * int(self.options.get("pipeline_parallel_size") or 1)

    # ---- protocol ----------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"engine": "ray", "engine_version": self._ray.__version__, "backend": self.inner,
                "model": self.model, "revision": self.revision, "options": dict(sorted(self.options.items())),
                "address": self.address, "started_local_cluster": self.started_cluster,
                "replicas": self.replicas, "gpus_per_replica": self.gpus_per_replica, "batch_size": self.batch_size,
                "dtype": (self.replica_engine or {}).get("dtype", self.options.get("dtype", "auto")),
                "rows_per_replica": dict(sorted(self.rows_per_replica.items())),
                "replica_engine": self.replica_engine}

    def fingerprint(self) -> str:
        from jleval.backends._common import fingerprint_of, model_identity

        return fingerprint_of(self.inner, model_identity(self.model, self.revision),
                              str(self.options.get("dtype", "auto")))

    def count_tokens(self, text: str, add_special_tokens: bool = False) -> int:
        raise NotImplementedError("the Ray backend counts tokens in its replicas only")

    def apply_chat_template(self, messages: Sequence[tuple[str, str]]) -> str:
        raise NotImplementedError("the Ray backend renders chat messages in its replicas")

    def _dataset(self, requests: Sequence[Request]):
        ray = self._ray
        from ray.data import ActorPoolStrategy

        rows = [{"i": i, "req": request_to_json(r)} for i, r in enumerate(requests)]
        # at least four batches per replica, so that a short run still uses them all; two batches in flight per
        # replica: the next one waits on the replica while it runs one (no idle round trip), and no more (Ray
        # Data's default queues several on the first replica up, and leaves the others idle)
        batch_size = max(1, min(self.batch_size, math.ceil(len(rows) / (4 * self.replicas))))
        ds = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch_size))
        return ds.map_batches(
            _engine_class({"inner": self.inner, "model": self.model, "revision": self.revision,
                           "options": self.options, "expected_identity": self.expected_identity}, self.engine),
            batch_size=batch_size, batch_format="numpy",
            compute=ActorPoolStrategy(size=self.replicas, max_tasks_in_flight_per_actor=2),
            num_gpus=self.gpus_per_replica, num_cpus=1, **self.ray_remote_args)

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        if not requests:
            return
        import warnings

        seen: set[int] = set()
        warnings.filterwarnings("ignore", module=r"ray\.data\..*")  # "operator received fewer inputs than actors"
        try:
            for batch in self._dataset(requests).iter_batches(batch_size=None, batch_format="numpy",
                                                              prefetch_batches=0):
                for text in batch.get("engine", ()):
                    if text and self.replica_engine is None:
                        self.replica_engine = json.loads(str(text))
                for i, out, replica in zip(batch["i"], batch["out"], batch["replica"]):
                    if int(i) in seen:  # a batch Ray ran twice (a retry after a lost result): written once
                        continue
                    seen.add(int(i))
                    self.rows_per_replica[str(replica)] = self.rows_per_replica.get(str(replica), 0) + 1
                    yield int(i), completion_from_json(str(out))
        except JlevalError:
            raise
        except Exception as err:  # noqa: BLE001 - Ray wraps what an actor raised; ours comes back as itself
            last = str(err).strip().splitlines()[-1] if str(err).strip() else ""
            raise _unwrap(err) or BackendError(
                f"the Ray run failed: {type(err).__name__}: {last}",
                "every completion so far is saved; fix the cause (the Ray logs say more) and re-run the same "
                "command to resume") from None

    def close(self) -> None:
        """Stop the local cluster this backend started; from any other cluster only disconnect."""
        if self._connected_here:  # shutdown() of a connected driver only disconnects
            with contextlib.suppress(Exception):
                self._ray.shutdown()
        self.started_cluster = self._connected_here = False
