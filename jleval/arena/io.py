"""The judgments file: JSONL, one judge verdict per line, appended and fsync'd as each verdict arrives.

The smallest valid line is a match judged elsewhere:

    {"model_a": "m1", "model_b": "m2", "winner": "a"}          # "a" | "b" | "tie"

jleval's judge writes more (all optional when reading):

    match        id of the match: shared by its two presentation orders when both are judged
                 ("<question>|<model>|<model>", models sorted), own id per call in single-order mode
                 ("<question>|<first>><second>")
    question_id  the question judged
    first        "a" | "b": whose answer was shown first (as アシスタント1); absent = unknown/neutral
    judge        identity of the judge (backend fingerprint)
    verdict      the marker parsed from the judge's text ("1", "2", "3") or null
    judgment     the judge's raw text
    error        why this line has no winner (unparsable verdict, failed judge call); such lines are never
                 counted as a win or a tie, only reported
    error_kind   "verdict" (the judge answered without a usable marker) | "judge" (the call itself failed)
    tstamp       unix time of the verdict
    answers_sha256  sha256 of the question and both answers judged (model_a's, then model_b's): a resumed
                 `arena judge` re-judges a line whose answers have changed since

Rakuda's own judgment lines (`model1_id`, `model2_id`, `winner`: 1 | 2 | 3 | "error") are read too: model1 is
shown first, 3 is a tie, "error" an unusable verdict. See docs/arena.md.

`collect_outcomes` turns lines into match outcomes for the Bradley–Terry fit: the two orders of one match
(same judge and match id) become one order-neutral outcome, a disagreement between them a tie.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jleval import jsonl
from jleval.arena.errors import EmptyJudgmentsError, JudgmentsFileError, UnknownModelError
from jleval.fsutil import atomic_write_json

WINNERS = ("a", "b", "tie")
_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5}


@dataclass(frozen=True)
class Judgment:
    model_a: str
    model_b: str
    winner: str | None  # "a" | "b" | "tie"; None when `error` says why there is no verdict
    question_id: str | int | None = None
    first: str | None = None  # "a" | "b" | None (unknown: the outcome is treated as order-neutral)
    match: str | None = None
    judge: str | None = None
    verdict: str | None = None
    judgment: str | None = None
    error: str | None = None
    error_kind: str | None = None
    tstamp: float | None = None
    answers_sha256: str | None = None

    @property
    def valid(self) -> bool:
        return self.error is None and self.winner in WINNERS

    @property
    def first_model(self) -> str | None:
        """The name of the model shown first, or None when the order is unknown."""
        shown: dict[str | None, str] = {"a": self.model_a, "b": self.model_b}
        return shown.get(self.first)

    @property
    def winner_model(self) -> str | None:
        """The winning model's name, "tie", or None for an error line."""
        if not self.valid:
            return None
        winners: dict[str | None, str] = {"a": self.model_a, "b": self.model_b, "tie": "tie"}
        return winners[self.winner]

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k in ("winner", "error")}


def _fail(path: Path | str, line: int, reason: str) -> JudgmentsFileError:
    return JudgmentsFileError(
        f"{path}, line {line}: {reason}",
        'each line must be a JSON object like {"model_a": "m1", "model_b": "m2", "winner": "a"|"b"|"tie"}; '
        "see docs/arena.md",
    )


def _from_rakuda(rec: dict) -> dict:
    """Rakuda's jrank judgment line -> our fields (model1 is the answer shown first)."""
    w = rec.get("winner")
    verdicts = {1: "a", 2: "b", 3: "tie", "1": "a", "2": "b", "3": "tie"}
    out = {"model_a": rec.get("model1_id"), "model_b": rec.get("model2_id"), "first": "a",
           "question_id": rec.get("question_id"), "winner": verdicts.get(w)}
    judge = rec.get("judge")
    if isinstance(judge, list) and judge:
        out["judge"] = str(judge[0])
    if w not in verdicts:
        out["error"] = f"rakuda verdict {w!r}"
        out["error_kind"] = "verdict"
    return out


def parse_line(rec: Any, path: Path | str, line: int) -> Judgment:
    if not isinstance(rec, dict):
        raise _fail(path, line, f"expected a JSON object, found {type(rec).__name__}")
    if "model_a" not in rec and "model1_id" in rec:
        rec = _from_rakuda(rec)
    a, b = _models(rec, path, line)
    winner, error, error_kind = _verdict(rec, path, line)
    first = rec.get("first")
    if first not in (None, "a", "b"):
        raise _fail(path, line, f"first must be \"a\" or \"b\" (whose answer was shown first), found {first!r}")
    qid = rec.get("question_id")
    if qid is not None and not isinstance(qid, (str, int)):
        raise _fail(path, line, f"question_id must be a string or an integer, found {qid!r}")
    return Judgment(
        model_a=a, model_b=b, winner=winner, question_id=qid, first=first,
        match=_as_str(rec.get("match")), judge=_as_str(rec.get("judge")), verdict=_as_str(rec.get("verdict")),
        judgment=_of_type(rec.get("judgment"), str),
        error=error, error_kind=error_kind,
        tstamp=_of_type(rec.get("tstamp"), (int, float)), answers_sha256=_of_type(rec.get("answers_sha256"), str),
    )


def _models(rec: dict, path: Path | str, line: int) -> tuple[str, str]:
    for key in ("model_a", "model_b"):
        if not isinstance(rec.get(key), str) or not rec[key].strip():
            raise _fail(path, line, f"missing or empty {key!r}")
    a, b = rec["model_a"], rec["model_b"]
    if a == b:
        raise _fail(path, line, f"self-match: model_a and model_b are both {a!r}")
    return a, b


def _verdict(rec: dict, path: Path | str, line: int) -> tuple[str | None, str | None, Any]:
    """(winner, error, error kind): a winner in WINNERS when there is no error; else the error as text and its
    kind (the winner then kept only when it is one of WINNERS)."""
    error = rec.get("error")
    winner = rec.get("winner")
    if error is not None:
        return (winner if winner in WINNERS else None), str(error), rec.get("error_kind")
    if winner not in WINNERS:
        raise _fail(path, line, f"winner must be \"a\", \"b\" or \"tie\", found {winner!r} "
                                "(record an unusable verdict with winner null and an \"error\" text)")
    return winner, None, None


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _of_type(value: Any, types: type | tuple[type, ...]) -> Any:
    return value if isinstance(value, types) else None


def read_judgments(path: Path | str, *, allow_missing: bool = False) -> list[Judgment]:
    """Every line of a judgments file, validated, by jleval.jsonl's rule: a last line without its newline (a
    crash mid-write) is ignored; any other bad line is an error naming the file and line. Blank lines are
    skipped."""
    path = Path(path)
    if not path.is_file():
        if allow_missing:
            return []
        raise JudgmentsFileError(f"judgments file {path} does not exist",
                                 "pass the JSONL file written by `jleval arena judge` (or your own)")
    data = path.read_bytes()

    def fail(n: int, reason: str) -> JudgmentsFileError:
        if n == 1 and reason.startswith("not valid JSON") and data.lstrip().startswith(b"{") \
                and b'"models"' in data[:4000]:
            return JudgmentsFileError(f"{path} looks like a ranking (arena.json), not a judgments file",
                                      "pass the judgments JSONL that `jleval arena judge` wrote (one match per line)")
        return _fail(path, n, reason)

    return [parse_line(rec, path, n) for n, rec in jsonl.parse(data, fail).records]


def read_many(paths: Sequence[Path | str]) -> list[Judgment]:
    out: list[Judgment] = []
    for p in paths:
        out += read_judgments(p)
    return out


class JudgmentWriter:
    """Appends judgments to a JSONL file, one line per verdict, flushed and fsync'd so a crash loses nothing
    already judged. A partial last line left by an earlier crash is cut off first (jleval.jsonl's rule)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._out = jsonl.Appender(self.path, fsync_every=0.0)

    def write(self, j: Judgment) -> None:
        self._out.write(j.to_json())

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> JudgmentWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def meta_path(judgments_path: Path | str) -> Path:
    """The sidecar that records judge, prompt and settings: judgments.jsonl -> judgments.meta.json."""
    p = Path(judgments_path)
    return p.with_name(p.stem + ".meta.json") if p.suffix else p.with_name(p.name + ".meta.json")


def read_meta(judgments_path: Path | str) -> dict | None:
    p = meta_path(judgments_path)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise JudgmentsFileError(f"{p}: not valid JSON ({e})", "delete the damaged sidecar; it is rewritten "
                                 "on the next `jleval arena judge` run") from None


def write_meta(judgments_path: Path | str, meta: dict) -> None:
    atomic_write_json(meta_path(judgments_path), meta, indent=2)


# ----- lines -> match outcomes ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """One match for the fit: `score_a` (1 win, 0.5 tie, 0 loss) and the first-position sign (+1: model_a
    shown first, -1: model_b shown first, 0: order-neutral, i.e. both orders judged or order unknown)."""

    model_a: str
    model_b: str
    score_a: float
    position: int
    question_id: str | int | None = None


@dataclass
class OutcomeStats:
    lines: int = 0  # judgment lines read
    errors: int = 0  # lines without a usable verdict (excluded)
    superseded: int = 0  # lines replaced by a later line for the same match and order (a retry)
    incomplete: int = 0  # two-order matches with one order unusable (excluded)
    both_unusable: int = 0  # two-order matches with neither order usable (excluded)
    both_orders: int = 0  # matches judged in both orders (order-neutral outcomes)
    disagreements: int = 0  # ... of which the two orders disagreed (counted as a tie)
    single_order: int = 0  # outcomes from one order (the fitted first-position term applies)
    unordered: int = 0  # outcomes with no order information (plain model_a/model_b/winner lines)
    error_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def outcomes(self) -> int:
        return self.both_orders + self.single_order + self.unordered


def _score_for(winner: str | None, model: str) -> float:
    """Score of `model` given the winning model name or 'tie' (None, an error line's, is never passed)."""
    return 0.5 if winner == "tie" else float(winner == model)


def collect_outcomes(judgments: Iterable[Judgment]) -> tuple[list[Outcome], OutcomeStats]:
    """Turn judgment lines into fit-ready outcomes (see the module doc). Lines sharing judge, match id and the
    model shown first replace one another (the last wins: a retried verdict supersedes the failed one)."""
    stats = OutcomeStats()
    outcomes: list[Outcome] = []
    for key, group in _by_match(judgments, stats).items():
        lines = list(group.values())
        for j in lines:
            if not j.valid:
                stats.errors += 1
                reason = (j.error_kind or "error")
                stats.error_reasons[reason] = stats.error_reasons.get(reason, 0) + 1
        if len(lines) >= 2:
            # lines are keyed by the model shown first: one pair and no unknown order leaves exactly two lines
            pair = {frozenset((j.model_a, j.model_b)) for j in lines}
            if len(pair) != 1 or None in group:
                raise JudgmentsFileError(
                    f"match {key[2]!r} (judge {key[1]!r}) has lines for different models or orders",
                    "a match id must name one pair of models, judged at most once in each order")
            outcome = _both_orders(lines[0], lines[1], stats)
        else:
            outcome = _one_order(lines[0], stats)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes, stats


def _by_match(judgments: Iterable[Judgment], stats: OutcomeStats) -> dict[tuple, dict[str | None, Judgment]]:
    """Lines grouped by (judge, match id) in first-seen order, then by the model shown first (the last line for
    one order wins); a line without a match id is a group of its own."""
    groups: dict[tuple, dict[str | None, Judgment]] = {}
    for n, j in enumerate(judgments):
        stats.lines += 1
        key: tuple = ("m", j.judge, j.match) if j.match is not None else ("line", n)
        group = groups.setdefault(key, {})
        if j.first_model in group:
            stats.superseded += 1
        group[j.first_model] = j
    return groups


def _both_orders(j1: Judgment, j2: Judgment, stats: OutcomeStats) -> Outcome | None:
    """One order-neutral outcome from a match judged in both orders (None when either order is unusable)."""
    if not (j1.valid and j2.valid):
        if j1.valid or j2.valid:
            stats.incomplete += 1
        else:
            stats.both_unusable += 1
        return None
    a, b = sorted((j1.model_a, j1.model_b))
    w1, w2 = j1.winner_model, j2.winner_model
    stats.both_orders += 1
    if w1 == w2:
        score = _score_for(w1, a)
    else:  # the two orders disagree: a tie
        stats.disagreements += 1
        score = 0.5
    return Outcome(a, b, score, 0, j1.question_id)


#: whose answer was shown first -> the outcome's position sign
_POSITION: dict[str | None, int] = {"a": 1, "b": -1, None: 0}


def _one_order(j: Judgment, stats: OutcomeStats) -> Outcome | None:
    """The outcome of a line judged in one order (or with no order information); None for an unusable line."""
    if not j.valid:
        return None
    pos = _POSITION[j.first]
    if pos:
        stats.single_order += 1
    else:
        stats.unordered += 1
    return Outcome(j.model_a, j.model_b, _score_for(j.winner_model, j.model_a), pos, j.question_id)


def check_models(judgments: Sequence[Judgment], known: Iterable[str], where: str = "the judgments") -> None:
    """Every model named in `judgments` must be one of `known` (the runs given)."""
    known = set(known)
    unknown = sorted({m for j in judgments for m in (j.model_a, j.model_b)} - known)
    if unknown:
        raise UnknownModelError(
            f"{where} name model(s) not among the runs given: {', '.join(unknown)}",
            f"known models: {', '.join(sorted(known)) or '(none)'}; pass the run folders of every judged model, "
            "or rank without --runs",
        )


def require_outcomes(outcomes: Sequence[Outcome], stats: OutcomeStats, sources: str) -> None:
    if outcomes:
        return
    if stats.lines == 0:
        raise EmptyJudgmentsError(f"no judgments in {sources}",
                                  "run `jleval arena judge` first, or check that you passed the right file")
    raise EmptyJudgmentsError(
        f"none of the {stats.lines} judgment lines in {sources} has a usable verdict "
        f"({stats.errors} errors: {', '.join(f'{k} {v}' for k, v in sorted(stats.error_reasons.items()))})",
        "look at the `error` field of the lines; re-judge with `jleval arena judge --retry-errors`",
    )
