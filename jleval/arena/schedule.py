"""Which matches to judge: Rakuda's balanced `pairwise-n`, seeded.

A match is one question and an unordered pair of models. Rakuda (jrank/gen_judgment.py) draws from every
ordered (model1, model2, question) triple, each time taking a random unplayed triple of the model that has played
least so far, until n judgments exist; so every model gets about the same number of matches. We do the same with
a seeded generator (ties between least-played models broken at random, not by list order), over:

- unordered matches when both presentation orders are judged (each match = two judge calls), or
- ordered triples in single-order mode (the first-named model is shown first: the order is part of the draw,
  so both orders occur about equally often and the fitted position term can absorb the judge's order bias).

With the same models, questions and seed, the schedule for a larger n starts with the schedule for a smaller n:
raising n extends a tournament instead of redrawing it. n=None takes every possible match (`pairwise-all`).
"""
from __future__ import annotations

import itertools
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Match:
    question_id: int | str
    model_x: str  # the pair in sorted order: model_x < model_y
    model_y: str

    @property
    def id(self) -> str:
        return f"{self.question_id}|{self.model_x}|{self.model_y}"


@dataclass(frozen=True)
class Call:
    """One judge call: `match` shown with `first`'s answer as アシスタント1. `paired`: the match is judged in
    both orders, and both calls share one match id (their verdicts combine into one order-neutral outcome);
    a single-order call has its own id, "<question>|<first>><second>", so it stays a positioned outcome even
    when the reverse order happens to be drawn too."""

    match: Match
    first: str
    paired: bool = True

    @property
    def second(self) -> str:
        return self.match.model_y if self.first == self.match.model_x else self.match.model_x

    @property
    def match_id(self) -> str:
        return self.match.id if self.paired else f"{self.match.question_id}|{self.first}>{self.second}"

    @property
    def key(self) -> tuple[str, str]:
        return self.match_id, self.first


def schedule(models: Sequence[str], question_ids: Sequence[int | str], n: int | None = None, seed: int = 0,
             both_orders: bool = True, answered: Mapping[str, Collection[int | str]] | None = None) -> list[Call]:
    """The judge calls of a balanced pairwise-n tournament (see the module doc). `n` counts matches (a match
    judged in both orders is 2 calls). `answered` (model -> question ids it has an answer for) leaves out
    matches where a model has no answer. Fewer than n matches come back when fewer exist."""
    models = sorted(set(models))
    if n is not None and n < 0:
        raise ValueError("n must be >= 0")
    units = _units(models, question_ids, both_orders, answered)
    if n is None or n >= len(units):
        chosen = units
    else:
        chosen = _balanced(models, units, n, random.Random(seed))
    calls = []
    for q, a, b in chosen:
        m = Match(q, *sorted((a, b)))
        calls += [Call(m, a), Call(m, b)] if both_orders else [Call(m, a, paired=False)]
    return calls


def _units(models: list[str], question_ids: Sequence[int | str], both_orders: bool,
           answered: Mapping[str, Collection[int | str]] | None) -> list[tuple[int | str, str, str]]:
    """Every match there is to draw, as (question, first-or-x, second-or-y): unordered pairs when both orders are
    judged, ordered ones otherwise; with `answered`, only those where both models have an answer."""
    pairs = list(itertools.combinations(models, 2) if both_orders else itertools.permutations(models, 2))
    return [(q, a, b) for q, (a, b) in itertools.product(question_ids, pairs)
            if answered is None or (q in answered.get(a, ()) and q in answered.get(b, ()))]


def _balanced(models: list[str], units: list[tuple], n: int, rng: random.Random) -> list[tuple]:
    by_model: dict[str, list[int]] = {m: [] for m in models}
    for k, (_, a, b) in enumerate(units):
        by_model[a].append(k)
        by_model[b].append(k)
    played = [False] * len(units)
    count = dict.fromkeys(models, 0)
    out: list[tuple] = []
    # the caller asks for fewer than all units, so while this runs some unit is unplayed: it is still in both its
    # models' lists, and `live` is never empty
    while len(out) < n:
        live = [m for m in models if by_model[m]]
        low = min(count[m] for m in live)
        m = rng.choice([x for x in live if count[x] == low])
        cand = by_model[m]
        while cand:  # draw a random unplayed unit of m; played ones are dropped lazily (swap-pop)
            pos = rng.randrange(len(cand))
            k = cand[pos]
            cand[pos] = cand[-1]
            cand.pop()
            if not played[k]:
                played[k] = True
                _, a, b = units[k]
                count[a] += 1
                count[b] += 1
                out.append(units[k])
                break
    return out
