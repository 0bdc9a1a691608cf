"""Command-line option groups shared by several commands (the CLI layer: only jleval/cli.py imports this).

The backend options (engine, hf and openai settings) are declared once, in BACKEND_OPTIONS, and added to a
command by the `backend_options` decorator: the command's own signature stays short, `--help` shows them under
one "Backend options" panel, the values are checked before anything is loaded, and the command receives them as
one dict (only the options given), ready for `load_backend`. A new backend option is one entry here.
"""
from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from jleval.errors import UsageError

PANEL = "Backend options"


@dataclass(frozen=True)
class BackendOption:
    """One option of the group: the command-line parameter `name`, the `load_backend` keyword `key`."""

    name: str
    key: str
    annotation: Any
    default: Any = None

    def value(self, given: Any) -> Any:
        # a plain flag left off is "not set" (None), so each backend's own default applies
        return None if given is False and self.default is False else given


def _opt(flags: str, help: str | None = None, **kw: Any) -> Any:
    return typer.Option(*flags.split(), help=help, rich_help_panel=PANEL, **kw)


BACKEND_OPTIONS: tuple[BackendOption, ...] = (
    BackendOption("dtype", "dtype", Annotated[str | None, _opt("--dtype", "auto | bfloat16 | float16 | float32")]),
    BackendOption("tensor_parallel_size", "tensor_parallel_size",
                  Annotated[int | None, _opt("--tensor-parallel-size",
                      "vllm: split one model copy across N GPUs (tensor parallelism; default 1).", min=1)]),
    BackendOption("pipeline_parallel_size", "pipeline_parallel_size",
                  Annotated[int | None, _opt("--pipeline-parallel-size",
                      "vllm: split the model's layers into N stages on N GPUs or nodes (default 1).", min=1)]),
    BackendOption("data_parallel_size", "data_parallel_size",
                  Annotated[int | None, _opt("--data-parallel-size",
                      "vllm: N model copies (engines), each on its own GPUs, sharing the requests "
                      "(default 1).", min=1)]),
    BackendOption("max_model_len", "max_model_len", Annotated[int | None, _opt(
        "--max-model-len", "vllm: the longest prompt + answer in tokens (default: the model's); lower it to fit "
                           "the KV cache on a small GPU.", min=1)]),
    BackendOption("gpu_memory_utilization", "gpu_memory_utilization",
                  Annotated[float | None, _opt("--gpu-memory-utilization",
                      "vllm: the share of GPU memory the engine may take, 0-1 (default 0.9).")]),
    BackendOption("trust_remote_code", "trust_remote_code", Annotated[bool, _opt(
        "--trust-remote-code",
        "vllm/hf: run the Python code a model repository ships (only for models you trust).")], False),
    BackendOption("distributed_executor_backend", "distributed_executor_backend",
                  Annotated[str | None, _opt("--distributed-executor-backend", "e.g. ray (multi-node)")]),
    BackendOption("batch_size", "batch_size",
                  Annotated[int | None, _opt("--batch-size", "hf: first batch size to try (halved on OOM).", min=1)]),
    BackendOption("device", "device", Annotated[str | None, _opt("--device", "hf: cpu | cuda | cuda:N | auto")]),
    BackendOption("base_url", "base_url",
                  Annotated[str | None, _opt("--base-url", "openai: server URL, e.g. http://127.0.0.1:8000/v1; "
                                                "several servers of the same model: URL1,URL2,...")]),
    BackendOption("api_key_env", "api_key_env",
                  Annotated[str | None, _opt("--api-key-env", "openai: environment variable holding the API key.")]),
    BackendOption("concurrency", "concurrency",
                  Annotated[int | None, _opt("--concurrency", "openai: requests in flight on each server (default: 8).",
                                                min=1)]),
    BackendOption("endpoint", "endpoint", Annotated[str | None, _opt(
        "--endpoint", "openai: auto (chat for chat messages, else completions) | completions | chat.")]),
    BackendOption("tokenizer", "tokenizer", Annotated[str | None, _opt(
        "--tokenizer", "openai: Hugging Face id or folder of the served model's tokenizer (token counts, chat "
        "rendering for the cache key).")]),
    BackendOption("vllm_extensions", "vllm_extensions", Annotated[bool | None, _opt(
        "--vllm-extensions/--no-vllm-extensions", "openai: send vLLM's extra sampling fields (off for commercial "
        "APIs that reject unknown fields; default on).")]),
    BackendOption("request_timeout", "timeout", Annotated[float | None, _opt(
        "--request-timeout", "openai: seconds one attempt may take in all, headers and body, before it is abandoned "
        "and retried (default: 120).")]),
    BackendOption("max_retries", "max_retries", Annotated[int | None, _opt(
        "--max-retries", "openai: retries on 429/5xx/timeouts, with backoff (default: 5).", min=0)]),
    BackendOption("ray", "ray", Annotated[str | None, _opt(
        "--ray", "Run the vllm/hf engine's replicas on Ray: local (a cluster on this machine for this run), auto "
        "(the one `ray start` began here) or HEAD:PORT (docs/gpu.md).")]),
    BackendOption("replicas", "replicas", Annotated[str | None, _opt(
        "--replicas", "With --ray: engine replicas, N or auto (one per GPU group; one per node on CPUs).")]),
)

_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


def check_backend_options(options: dict[str, Any]) -> None:
    """Refuse, before any model is loaded, option values no backend can take (one line naming the option)."""
    device = options.get("device")
    if device is not None and not _DEVICE.fullmatch(device):
        raise UsageError(f"--device {device!r} is not a device", "use cpu, cuda, cuda:N (a GPU index), mps or auto")
    for key, flag in (("timeout", "--request-timeout"), ("gpu_memory_utilization", "--gpu-memory-utilization")):
        value = options.get(key)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{flag} must be a positive number, not {value}")
    if options.get("gpu_memory_utilization", 0) > 1:
        raise UsageError("--gpu-memory-utilization is a share of the GPU's memory: above 0, at most 1")
    if options.get("base_url") is not None:
        from jleval.backends.openai import parse_base_urls  # light: httpx is imported when a backend is built

        parse_base_urls(options["base_url"])
    if "ray" in options:
        from jleval.backends.ray import parse_replicas  # no Ray import: the module imports it when it runs

        parse_replicas(options.get("replicas"))
    elif "replicas" in options:
        raise UsageError("--replicas needs --ray", "add --ray local (this machine) or --ray HEAD:PORT (a cluster)")


def backend_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the backend option group to a Typer command: it receives them as `backend_options` (a dict of the
    options given, keyed as load_backend takes them), checked by check_backend_options. The command's own
    annotations are evaluated here, so the option aliases it uses must be defined above it."""
    sig = inspect.signature(command, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "backend_options"]
    group = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default, annotation=o.annotation)
             for o in BACKEND_OPTIONS]

    @functools.wraps(command)
    def with_group(**kwargs: Any) -> Any:
        given = {o.key: o.value(kwargs.pop(o.name)) for o in BACKEND_OPTIONS}
        options = {k: v for k, v in given.items() if v is not None}
        check_backend_options(options)
        return command(**kwargs, backend_options=options)

    with_group.__signature__ = sig.replace(parameters=own + group)  # type: ignore[attr-defined]  # read by typer's inspect
    return with_group
