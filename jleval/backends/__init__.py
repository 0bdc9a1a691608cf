"""Inference backends behind one protocol (see base.py). Each module imports its engine lazily.

`load_backend(name, model, **options)` is the one way in: `name` is "vllm", "hf", "openai" or "auto" (vllm
when it imports and its platform works, CUDA or CPU, else hf), a baseline ("oracle", "majority": baselines.py) or the
test backend "scripted" (scripted.py). Options left at None are dropped, so a caller can pass every CLI option
and each backend takes the ones it knows; an option a model backend does not take is a UsageError that names it.
`data` (where the run's evaluation sets live) is offered to every backend; only the majority baseline reads it.
"""
from __future__ import annotations

import importlib.util
import logging
from typing import Any

from jleval.backends.base import Backend
from jleval.errors import UsageError
from jleval.types import DataSource

BACKENDS = ("vllm", "hf", "openai")
#: Backends without a model engine: the honest baselines, and the scripted backend for tests.
BASELINES = ("oracle", "majority")
SCRIPTED = "scripted"


def vllm_platform() -> str | None:
    """The device vLLM would run on here ("cuda", "cpu", ...): None when vLLM is not installed, does not import,
    or finds no platform it supports (e.g. a CUDA build without a GPU)."""
    try:
        if importlib.util.find_spec("vllm") is None:
            return None
        from jleval.backends.vllm import platform_of

        return platform_of(None)
    except Exception:  # noqa: BLE001 (a vLLM that fails to import is a vLLM that cannot run)
        return None


def resolve_backend_name(name: str) -> str:
    """'auto' -> 'vllm' when vLLM imports and its platform works (CUDA or CPU), else 'hf' (the choice is
    logged to stderr; the run records it); other names checked."""
    if name == "auto":
        platform = vllm_platform()
        if platform:
            chosen, why = "vllm", f"vLLM on its {platform} platform"
        else:
            chosen, why = "hf", "no vLLM here with a platform it can run on"
        logging.getLogger("jleval").warning("--backend auto: %s (%s)", chosen, why)
        return chosen
    if name not in BACKENDS + BASELINES + (SCRIPTED,):
        raise UsageError(f"unknown backend {name!r}", f"use one of: auto, {', '.join(BACKENDS + BASELINES)}")
    return name


def load_backend(name: str, model: str, data: DataSource | None = None, **options: Any) -> Backend:
    """Build the named backend for `model` (a Hub id, a local folder, or the served model's name)."""
    from jleval.backends._common import check_hub_model, check_options

    name = resolve_backend_name(name)
    if name in BASELINES:
        from jleval.backends import baselines

        return baselines.load(name, model, data=data, **options)
    if name == SCRIPTED:
        from jleval.backends import scripted

        check_options(SCRIPTED, options, scripted.OPTIONS)
        return scripted.ScriptedBackend(model=model)
    if name in ("vllm", "hf"):
        check_hub_model(model, options.get("revision"))  # before the engine's slow import and the Hub's retries
    if name == "vllm":
        from jleval.backends import vllm

        return vllm.VLLMBackend(model, **check_options("vllm", options, vllm.OPTIONS))
    if name == "hf":
        from jleval.backends import hf

        return hf.HFBackend(model, **check_options("hf", options, hf.OPTIONS))
    from jleval.backends import openai

    return openai.OpenAIBackend(model, **check_options("openai", options, openai.OPTIONS))
