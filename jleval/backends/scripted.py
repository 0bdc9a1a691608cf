"""A scripted backend for tests (like inspect_ai's mockllm): it implements the Backend protocol fully and answers
from a script instead of a model, so the run, arena and scoring pipelines can be exercised end to end without
an engine, including the ways engines fail.

    ScriptedBackend()                                   every request answered "scripted output"
    ScriptedBackend(["a", "b"])                         answers in turn (the last one repeats)
    ScriptedBackend(lambda req: req.gold)               a function of the Request: a str or a whole Completion
                                                        (e.g. Completion(text="", finish_reason="error", error=...))
    ScriptedBackend(..., crash_after=13)                the "engine" dies after 13 completions (`crash` is raised)
    ScriptedBackend(..., shuffle_seed=1)                completions come back out of order, as vLLM's do

`load_backend("scripted", MODEL)` builds the default one (`--backend scripted` on the command line); it
records what it was asked (`requests`, `batches`) and whether it was closed (`closed`).
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from jleval import __version__
from jleval.types import Completion, Request

OPTIONS: set[str] = set()  # it takes no engine options
Answer = str | Completion
Script = Sequence[Answer] | Callable[[Request], Answer] | None
DEFAULT_OUTPUT = "scripted output"


class ScriptedBackend:
    name = "scripted"

    def __init__(self, script: Script = None, *, model: str = "scripted", fingerprint: str | None = None,
                 crash_after: int | None = None, crash: BaseException | None = None,
                 shuffle_seed: int | None = None) -> None:
        self.script = script
        self.model = model
        self._fingerprint = fingerprint or f"scripted:{model}"
        self.crash_after = crash_after
        self.crash = crash or RuntimeError("the scripted engine crashed")
        self.shuffle_seed = shuffle_seed
        self.requests: list[Request] = []
        self.batches: list[int] = []
        self.closed = False
        self._served = 0

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "engine": "jleval-scripted", "engine_version": __version__, "model": self.model}

    def fingerprint(self) -> str:
        return self._fingerprint

    def count_tokens(self, text: str, add_special_tokens: bool = False) -> int:
        return len(text.split())

    def apply_chat_template(self, messages: Sequence[tuple[str, str]]) -> str:
        return "".join(f"<|{role}|>{content}\n" for role, content in messages)

    def answer(self, req: Request) -> Completion:
        """The scripted Completion for one request (the next one in a list script)."""
        if callable(self.script):
            out = self.script(req)
        elif self.script:
            out = self.script[min(self._served, len(self.script) - 1)]
        else:
            out = DEFAULT_OUTPUT
        self._served += 1
        if isinstance(out, Completion):
            return out
        return Completion(text=out, finish_reason="stop", prompt_tokens=self.count_tokens(req.prompt),
                          completion_tokens=self.count_tokens(out), latency_s=0.0)

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        self.batches.append(len(requests))
        self.requests += list(requests)
        order = list(range(len(requests)))
        if self.shuffle_seed is not None:
            random.Random(self.shuffle_seed).shuffle(order)
        for done, i in enumerate(order):
            if self.crash_after is not None and done >= self.crash_after:
                raise self.crash
            yield i, self.answer(requests[i])

    def close(self) -> None:
        self.closed = True
