"""Two honest baselines that run through the same pipeline as a model:

- `oracle`: answers with the gold output. Every exact-match task must score 1.0 with it: a built-in sanity
  check of the prompt -> cache -> score path.
- `majority`: answers every sample of a task with the most frequent output of the task's train split (ties
  broken by the label list's order, then alphabetically): the floor a model must beat.

Both are loaded like any backend (`load_backend("oracle"|"majority", model, data=...)`). A baseline has no engine:
engine options (dtype, batch size, server URL, ...) are accepted and ignored; the majority baseline reads the
train sets from the run's data (`DataSource`).
"""
from __future__ import annotations

import collections
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from jleval import __version__
from jleval.errors import UsageError
from jleval.types import Completion, DataSource, Request


class _Baseline:
    name = "baseline"

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "engine": "jleval-baseline", "engine_version": __version__}

    def fingerprint(self) -> str:
        return f"{self.name}@{__version__}"

    def count_tokens(self, text: str, add_special_tokens: bool = False) -> int:
        return len(text)

    def apply_chat_template(self, messages: Sequence[tuple[str, str]]) -> str:
        return "\n".join(content for _, content in messages)

    def answer(self, req: Request) -> str:
        raise NotImplementedError

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        for i, req in enumerate(requests):
            t = time.perf_counter()
            text = self.answer(req)
            yield i, Completion(text=text, finish_reason="stop", prompt_tokens=len(req.prompt),
                                completion_tokens=len(text), latency_s=time.perf_counter() - t)

    def close(self) -> None:
        pass


class OracleBackend(_Baseline):
    name = "oracle"

    def answer(self, req: Request) -> str:
        if req.gold is None:
            raise ValueError("the oracle baseline needs the gold answer on each request")
        return req.gold


class MajorityBackend(_Baseline):
    name = "majority"

    def __init__(self, answers: Mapping[str, str] | None = None, data: DataSource | None = None) -> None:
        """`answers`: task -> the answer; a task not in it gets the majority of its train split in `data`."""
        self.answers = dict(answers or {})
        self.data = data

    @staticmethod
    def majority(outputs: Sequence[str], label_list: Sequence[str] = ()) -> str:
        if not outputs:
            return label_list[0] if label_list else ""
        counts = collections.Counter(outputs)
        order = {label: i for i, label in enumerate(label_list)}
        return min(counts, key=lambda o: (-counts[o], order.get(o, len(order)), o))

    def answer(self, req: Request) -> str:
        if req.task not in self.answers:
            self.answers[req.task] = self.majority(self._train_outputs(req.task), req.label_list)
        return self.answers[req.task]

    def _train_outputs(self, task: str) -> list[str]:
        from jleval.prompts import load_eval_set

        if self.data is None:
            return []
        if not (Path(self.data.data_dir) / self.data.version / "evaluation" / "train" / f"{task}.json").is_file():
            return []  # a task without a train split: the first label (or nothing)
        return [s["output"] for s in load_eval_set(self.data.data_dir, self.data.version, "train", task)["samples"]]


def load(name: str, model: str, data: DataSource | None = None, **options: Any) -> _Baseline:
    """The baseline `name` ("oracle" or "majority"); engine options are ignored (a baseline has no engine)."""
    if name == "oracle":
        return OracleBackend()
    if data is None:
        raise UsageError("the majority baseline needs the evaluation data", "run it through `jleval run`")
    return MajorityBackend(data=data)
