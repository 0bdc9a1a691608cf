"""A metric's signature as an object (sacrebleu's `Signature`): the ordered settings that change a number, one
formatter (`str(sig)`: a Signature is its text), and `update()` for the steps after the metric (the post-processing
a task really got).

    sig = Signature.of(("metric", "exact_match"), ("cmp", "string-equality"), pp.signature_of(profile),
                       ("agg", "mean"), versions_of())
    str(sig)  ->  "metric:exact_match|cmp:string-equality|profile:llm-jp-eval-1.4.1|post:…|agg:mean|jleval:0.1.0"
    sig.update(post="extract:first-para+nfkc+strip")   # a new Signature, the key keeps its place

Values are printed as they are (bools as yes/no, as sacrebleu does); keys keep the order they were given in. A
Signature is a `str` (its formatted text), so it is written to scores.json and compared as text unchanged.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Union

Part = Union["Signature", tuple[str, Any], str]


class Signature(str):
    """The formatted text *is* the string (so a signature prints, compares and serialises as the
    "key:value|…" text everywhere), and the object keeps its ordered pairs for `get` and `update`."""

    _pairs: dict[str, str]

    def __new__(cls, pairs: Iterable[tuple[str, Any]] = ()) -> Signature:
        ordered = {key: _text(value) for key, value in pairs}
        obj = super().__new__(cls, "|".join(f"{k}:{v}" for k, v in ordered.items()))
        obj._pairs = ordered
        return obj

    @classmethod
    def of(cls, *parts: Part) -> Signature:
        """Join parts: (key, value) pairs, other signatures, or "key:value|key:value" text (a signature already
        formatted, e.g. a sandbox's limits)."""
        pairs: list[tuple[str, Any]] = []
        for part in parts:
            if isinstance(part, Signature):
                pairs.extend(part.items())
            elif isinstance(part, str):
                pairs.extend(_parse(part))
            else:
                pairs.append(part)
        return cls(pairs)

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs.items())

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._pairs.get(key, default)

    def update(self, **changes: Any) -> Signature:
        """A copy with these keys' values replaced (in place in the order) or appended."""
        pairs = dict(self._pairs)
        pairs.update({k: _text(v) for k, v in changes.items()})
        return Signature(pairs.items())

    def __repr__(self) -> str:
        return f"Signature({str.__str__(self)!r})"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _parse(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, text.split("|")):
        key, _, value = item.partition(":")
        pairs.append((key, value))
    return pairs
