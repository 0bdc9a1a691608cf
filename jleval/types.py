"""The core records that flow between stages: a Request goes to a backend, a Completion comes back.

Requests are plain, frozen data so that every backend (vLLM, transformers, an OpenAI-compatible server, the
test fakes) sees exactly the same thing, and so that `Request.key` (the cache key) is stable across runs.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GenParams:
    """Decoding settings that change the output. Greedy by default, as on the leaderboard."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()  # stop strings (e.g. "\n\n" where post-processing cuts there anyway)
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class Request:
    """One generation: a fully rendered prompt (text) or chat messages, plus decoding settings.

    `prompt` is the exact text given to the model. When `messages` is set the backend applies the model's
    chat template to them (the openai backend sends them to the chat endpoint); `prompt` then holds the
    rendered chat text for caching and inspection. `add_special_tokens` is the BOS policy.
    """

    task: str
    sample_id: int
    prompt: str
    gen: GenParams
    messages: tuple[tuple[str, str], ...] | None = None  # ((role, content), ...)
    add_special_tokens: bool = False
    # For the honest baselines only (oracle, majority label): the gold answer and the task's labels. Not part
    # of the cache key, and a model backend never reads them.
    gold: str | None = field(default=None, compare=False, repr=False)
    label_list: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def key(self, model_fingerprint: str) -> str:
        """Cache key: sha256 of model identity + prompt/messages + output-affecting decoding settings."""
        payload = json.dumps(
            {"model": model_fingerprint, "prompt": self.prompt, "messages": self.messages,
             "gen": self.gen.to_json(), "bos": self.add_special_tokens},
            ensure_ascii=False, sort_keys=True,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class Completion:
    """What a backend returns for one Request. `error` is set (never an empty text) when generation failed."""

    text: str
    finish_reason: str | None = None  # "stop" | "length" | "error" | ...
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSource:
    """Where a run's evaluation sets live (`<data_dir>/<version>/evaluation/<split>/<task>.json`): offered to
    every backend; the baselines that answer from the data (majority) read their train sets from it."""

    data_dir: Path
    version: str
