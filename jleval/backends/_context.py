"""Prompts that cannot fit the model's context, found before generation on every backend.

A request whose prompt tokens plus its output length (`max_tokens`) exceed the model's context would crash
an engine (vLLM refuses it), be cut short (a server), or run past the positions the model was trained on
(transformers). They are all answered with an error Completion that names the prompt length and the limit,
the others are generated as usual, and the caller is told per task how many were refused before anything
runs. A backend takes part by offering `context_length()` (None or absent: not known, nothing is checked).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from jleval.types import Completion, Request


def context_length(backend: Any) -> int | None:
    """The model's context in tokens as the backend will enforce it, or None when the backend cannot say."""
    fn = getattr(backend, "context_length", None)
    limit = fn() if callable(fn) else None
    return limit if isinstance(limit, int) and limit > 0 else None


def prompt_text(backend: Any, request: Request) -> str:
    """The text the model is given: the request's chat messages rendered with the backend's chat template, or
    its prompt."""
    return backend.apply_chat_template(request.messages) if request.messages is not None else request.prompt


def prompt_tokens(backend: Any, request: Request) -> int:
    """The prompt's length in tokens, exactly as the backend will tokenize it (chat template, BOS policy)."""
    return backend.count_tokens(prompt_text(backend, request), add_special_tokens=request.add_special_tokens)


def too_long(backend: Any, requests: Sequence[Request]) -> dict[int, Completion]:
    """Error completions, by request index, for the requests that do not fit the context."""
    limit = context_length(backend)
    if limit is None:
        return {}
    refused = {}
    for i, req in enumerate(requests):
        n = prompt_tokens(backend, req)
        if n + req.gen.max_tokens > limit:
            refused[i] = Completion(
                text="", finish_reason="error", prompt_tokens=n,
                error=f"the prompt is {n} tokens; with up to {req.gen.max_tokens} output tokens that is "
                      f"{n + req.gen.max_tokens}, more than the model's context of {limit} tokens")
    return refused


def describe_refused(requests: Sequence[Request], refused: dict[int, Completion], limit: int | None) -> str:
    """One line naming, per task, how many prompts do not fit."""
    per_task = Counter(requests[i].task for i in refused)
    counts = ", ".join(f"{task} {n}" for task, n in sorted(per_task.items()))
    return (f"{len(refused)} prompt(s) plus their output length exceed the model's context of {limit} tokens "
            f"({counts}): they are written as error rows, not generated")


def generate_within_context(backend: Any, requests: Sequence[Request],
                            warn: Callable[[str], None] | None = None,
                            refused: dict[int, Completion] | None = None) -> Iterator[tuple[int, Completion]]:
    """`backend.generate(requests)`, with the requests that do not fit the context answered by error
    completions up front (reported through `warn` before generation starts). `refused`: `too_long`'s answer
    when the caller has already asked it."""
    refused = too_long(backend, requests) if refused is None else refused
    if refused and warn is not None:
        warn(describe_refused(requests, refused, context_length(backend)))
    yield from refused.items()
    if len(refused) == len(requests):
        return
    keep = [i for i in range(len(requests)) if i not in refused]
    for j, completion in backend.generate([requests[i] for i in keep]):
        yield keep[j], completion
