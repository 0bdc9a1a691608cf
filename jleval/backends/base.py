"""The backend protocol.

A backend turns Requests into Completions. `generate` takes every request at once (the backend schedules
them: vLLM batches them all, hf builds length-sorted batches, openai bounds concurrency) and *yields*
(index, Completion) pairs as each one finishes, in any order, so the caller can write each to disk at once
and a crash loses at most the requests in flight.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from jleval.types import Completion, Request


class Backend(Protocol):
    name: str

    def describe(self) -> dict[str, Any]:
        """Everything about the engine that affects outputs: engine + version, model id + revision, dtype,
        tokenizer, chat template hash, parallelism, ... Recorded in the run manifest."""
        ...

    def fingerprint(self) -> str:
        """A short, stable identity of the model as loaded (id + revision + dtype + engine), for cache keys."""
        ...

    def count_tokens(self, text: str, add_special_tokens: bool = False) -> int:
        ...

    def apply_chat_template(self, messages: Sequence[tuple[str, str]]) -> str:
        """Render chat messages with the model's chat template (add_generation_prompt=True)."""
        ...

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        ...

    def close(self) -> None:
        ...
