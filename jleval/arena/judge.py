"""Pairwise judging of arena answers by an LLM judge (any Backend), appended to a JSONL file as verdicts arrive.

    answers   run folders of `jleval run MODEL --tasks rakuda --split test`:
              RUN/manifest.json ("model": {"id", "revision"}) and RUN/outputs/rakuda.jsonl
              (one line per question: {"id", "input", "generation", "error", ...}; the last line per id wins)
    schedule  balanced pairwise-n (schedule.py), seeded; both presentation orders by default
    prompt    prompts/rakuda_judge_ja.txt (Rakuda's "pair-ja", ending in a strict [[1]]/[[2]]/[[3]] marker)
    output    judgments.jsonl, one line per judge call (io.py), flushed and fsync'd per line, and the sidecar
              judgments.meta.json: judge identity, prompt sha256, decoding settings, schedule, answer sources

All pending calls of a pass go to the backend as one batch (it schedules them: vLLM batches them, the openai
backend bounds concurrency). A re-run skips every call already on disk, so a crash or a failed endpoint loses
nothing already judged; calls whose judge request failed are retried, unparsable verdicts only with
retry_errors=True (a greedy judge would say the same again).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from jleval import __version__, jsonl, records
from jleval.arena.errors import AnswersError, ArenaError, JudgeFailedError, JudgeSettingsError
from jleval.arena.io import Judgment, JudgmentWriter, meta_path, read_judgments, read_meta, write_meta
from jleval.arena.schedule import Call, schedule
from jleval.errors import UsageError
from jleval.fsutil import exclusive, sha256_file, sha256_text
from jleval.types import GenParams, Request

TASK = "rakuda"
DEFAULT_PROMPT = "rakuda_judge_ja.txt"
DEFAULT_MAX_TOKENS = 2048  # Rakuda's GPT judge setting
#: Settings that must be equal to append to an existing judgments file.
IDENTITY_KEYS = ("judge", "prompt_sha256", "gen", "system_role", "both_orders", "task")


# ----- the judge prompt -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JudgePrompt:
    name: str
    system: str
    user: str

    @property
    def sha256(self) -> str:
        return sha256_text(json.dumps({"system": self.system, "user": self.user}, ensure_ascii=False))

    def render(self, question: str, answer_1: str, answer_2: str) -> tuple[str, str]:
        """(system, user) with the placeholders filled in one pass, so text inside an answer is never
        substituted again."""
        values = {"question": question, "answer_1": answer_1, "answer_2": answer_2}
        user = re.sub(r"\{(question|answer_1|answer_2)\}", lambda m: values[m.group(1)], self.user)
        return self.system, user


_SECTION = re.compile(r"^=== (system|user) ===$", re.M)


def load_prompt(name_or_path: str | Path | None = None) -> JudgePrompt:
    """A judge prompt file: a bundled name in prompts/ (default rakuda_judge_ja.txt) or a path. Format: "#"
    comment lines, then "=== system ===" and "=== user ===" sections; the user section must contain
    {question}, {answer_1} and {answer_2}."""
    from jleval.resources import prompts_dir

    target = name_or_path or DEFAULT_PROMPT
    path = Path(target)
    if not path.is_file():
        path = prompts_dir() / str(target)
    if not path.is_file():
        raise UsageError(f"judge prompt {target} not found", f"pass a file path or a name in {prompts_dir()}")
    text = path.read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    head, sections = parts[0], dict(zip(parts[1::2], parts[2::2]))
    if any(line.strip() and not line.startswith("#") for line in head.splitlines()) or "user" not in sections:
        raise UsageError(f"judge prompt {path} is not in the expected format",
                         "write '#' comment lines, then '=== system ===' and '=== user ===' sections")
    system = sections.get("system", "").strip("\n")
    user = sections["user"].strip("\n")
    for ph in ("{question}", "{answer_1}", "{answer_2}"):
        if ph not in user:
            raise UsageError(f"judge prompt {path}: the user section lacks {ph}", "add the placeholder")
    return JudgePrompt(path.name, system, user)


# ----- verdicts ---------------------------------------------------------------------------------------------------

_MARKER = re.compile(r"\[\[\s*([123])\s*\]\]")


def parse_verdict(text: str) -> tuple[str | None, str | None]:
    """The judge's marker: ("1" | "2" | "3", None), or (None, why) when there is no single clear verdict.

    Strict: only a [[1]], [[2]] or [[3]] marker counts (full-width digits and brackets are normalised with NFKC);
    a bare digit never does. If the last line holding a marker holds only one kind, that is the verdict (the
    prompt asks for it on the last line, and an explanation may quote the markers earlier); otherwise every
    marker in the text must agree. Anything else is an error, never a win."""
    norm = unicodedata.normalize("NFKC", text or "")
    found = _MARKER.findall(norm)
    if not found:
        return None, "no verdict marker [[1]], [[2]] or [[3]] in the judgment"
    for line in reversed(norm.splitlines()):
        kinds = set(_MARKER.findall(line))
        if kinds:
            if len(kinds) == 1:
                return kinds.pop(), None
            break
    if len(set(found)) == 1:
        return found[0], None
    return None, f"conflicting verdict markers: {', '.join(sorted(f'[[{k}]]' for k in set(found)))}"


# ----- answers ----------------------------------------------------------------------------------------------------

@dataclass
class Answers:
    model: str
    run_dir: Path
    model_id: str
    revision: str | None
    by_id: dict[int | str, tuple[str, str]]  # question id -> (question, answer)
    missing: int  # questions whose latest line is an error
    outputs_sha256: str


def _manifest_fail(path: Path):
    return lambda reason: AnswersError(f"{path} {reason}",
                                       "the manifest is damaged: re-run `jleval run` into a fresh folder")


def _output_rows(outputs: Path) -> list[dict]:
    """The rows of a run's outputs file (jleval.jsonl's rule: a line cut off by a crash of the run is ignored);
    each must be an object with an `id`."""
    def fail(n: int, reason: str) -> AnswersError:
        return AnswersError(f"{outputs}, line {n}: not an output record ({reason})",
                            "the file is damaged: re-run `jleval run` to rewrite it")

    rows = jsonl.read_objects(outputs, fail).records
    for n, row in rows:
        if not isinstance(row.get("id"), (int, str)) or isinstance(row.get("id"), bool):
            raise fail(n, "no 'id'")
    return [row for _, row in rows]


def load_answers(run_dirs: Sequence[Path | str], names: Sequence[str | None] | None = None,
                 task: str = TASK) -> list[Answers]:
    """Answers of each run folder; `names` (one per folder, None = keep) overrides the model names (default:
    the manifest's model id)."""
    if names is None:
        names = [None] * len(run_dirs)
    elif len(names) != len(run_dirs):
        raise UsageError(f"{len(names)} names for {len(run_dirs)} run folders", "give one name per run folder")
    out = [_answers_of(Path(rd), name, task) for rd, name in zip(run_dirs, names)]
    _check_distinct_models(out)
    _check_same_questions(out)
    return out


def _answers_of(rd: Path, name: str | None, task: str) -> Answers:
    man_path, outputs = rd / "manifest.json", rd / "outputs" / f"{task}.jsonl"
    if not man_path.is_file():
        raise AnswersError(f"{rd} is not a run folder (no manifest.json)",
                           f"pass folders made by `jleval run MODEL --tasks {task} --split test`")
    model = records.read_manifest(man_path, _manifest_fail(man_path), required=("model.id",))["model"]
    model_id, revision = model["id"], model.get("revision")
    if not outputs.is_file():
        raise AnswersError(f"{rd} has no {task} answers ({outputs} is missing)",
                           f"run `jleval run {model_id} --tasks {task} --split test` first")
    latest: dict[int | str, dict] = {}
    for row in _output_rows(outputs):
        kept = latest.setdefault(row["id"], row)  # the question's row so far (this one if it is the first)
        if row.get("error") is None or kept.get("error") is not None:
            latest[row["id"]] = row  # a good answer is never replaced by a later failed retry
    by_id = {q: (str(r.get("input", "")), str(r.get("generation") or "")) for q, r in latest.items()
             if r.get("error") is None}
    return Answers(name or model_id, rd, model_id, revision, by_id, len(latest) - len(by_id), sha256_file(outputs))


def _check_distinct_models(answers: list[Answers]) -> None:
    seen: dict[str, Path] = {}
    for a in answers:
        if a.model in seen:
            raise AnswersError(f"two run folders answer as model {a.model!r}: {seen[a.model]} and {a.run_dir}",
                               "pass one run per model, or give each a distinct name (--name RUN_DIR=NAME)")
        seen[a.model] = a.run_dir


def _check_same_questions(answers: list[Answers]) -> None:
    questions: dict[int | str, tuple[str, Path]] = {}
    for a in answers:
        for q, (text, _) in a.by_id.items():
            first_text, first_run = questions.setdefault(q, (text, a.run_dir))
            if first_text != text:
                raise AnswersError(f"question {q} differs between {first_run} and {a.run_dir}",
                                   "judge runs made from the same question set (same task data version)")


# ----- judging ------------------------------------------------------------------------------------------------------

@dataclass
class JudgeReport:
    out_path: Path
    meta_path: Path
    models: list[str]
    scheduled: int  # judge calls in the schedule
    already_done: int  # ... found on disk and skipped
    judged: int  # verdicts written in this pass
    verdict_errors: int  # ... of which unparsable (excluded from the ranking)
    judge_errors: int  # ... of which failed judge calls (retried on the next run)
    missing_answers: dict[str, int] = field(default_factory=dict)
    rejudged: int = 0  # calls judged again because a model's answers changed since their verdict
    too_long: int = 0  # ... of the judge errors, prompts refused up front: they do not fit the judge's context


ProgressFn = Callable[[int, int], None]  # (calls finished in this pass, calls in this pass)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _render(backend, prompt: JudgePrompt, call: Call, answers: dict[str, Answers], gen: GenParams,
            system_role: bool, index: int) -> Request:
    q = call.match.question_id
    question = answers[call.first].by_id[q][0]
    system, user = prompt.render(question, answers[call.first].by_id[q][1], answers[call.second].by_id[q][1])
    messages: tuple[tuple[str, str], ...]
    if system_role and system:
        messages = (("system", system), ("user", user))
    else:  # judges without a system role: the instructions go first in the user turn (as Rakuda did for Claude)
        messages = (("user", f"{system}\n\n{user}" if system else user),)
    try:
        text = backend.apply_chat_template(messages)
    except (NotImplementedError, AttributeError):
        text = "\n\n".join(c for _, c in messages)
    return Request(task=f"arena:{TASK}", sample_id=index, prompt=text, gen=gen, messages=messages)


def _exclusive(out_path: Path):
    """One judging process per judgments file (a hidden lock file beside it)."""
    return exclusive(out_path.parent / f".{out_path.name}.lock",
                     ArenaError(f"another `jleval arena judge` is writing {out_path}",
                                "wait for it to finish, or pass another --out"))


def _check_resume(out_path: Path, identity: dict[str, Any], existing: list[Judgment]) -> dict | None:
    meta = read_meta(out_path)
    if meta is None:
        if any(j.judge != identity["judge"] for j in existing):
            raise JudgeSettingsError(
                f"{out_path} already holds judgments from another judge and has no {meta_path(out_path).name}",
                "write to a new file (--out), or rank the existing file as it is")
        return None
    old = meta.get("identity", {})
    diff = [k for k in IDENTITY_KEYS if old.get(k) != identity.get(k)]
    if diff:
        lines = "; ".join(f"{k}: {old.get(k)!r} there vs {identity.get(k)!r} now" for k in diff)
        raise JudgeSettingsError(
            f"{out_path} was judged with different settings ({lines}); appending would mix them",
            "write to a new file (--out), or re-run with the settings recorded in "
            f"{meta_path(out_path).name}")
    return meta


def check_inputs(run_dirs: Sequence[Path | str], *, n: int | None = None, prompt: str | Path | None = None,
                 names: Sequence[str | None] | None = None) -> tuple[JudgePrompt, dict[str, Answers]]:
    """Every input of `judge` but the judge itself, checked (the CLI calls this before loading the judge model):
    the judge prompt, and the answers of each run folder by model name."""
    if len(run_dirs) < 2:
        raise UsageError(f"{len(run_dirs)} run folder(s) given", "pass the run folders of at least two models")
    if n is not None and n <= 0:
        raise UsageError(f"n must be positive, got {n}", "pass --n N (matches), or leave it out for every match")
    return load_prompt(prompt), {a.model: a for a in load_answers(run_dirs, names)}


def judge(
    judge_backend,
    run_dirs: Sequence[Path | str],
    out_path: Path | str,
    *,
    n: int | None = None,
    both_orders: bool = True,
    seed: int = 0,
    prompt: str | Path | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    temperature: float = 0.0,
    system_role: bool = True,
    retry_errors: bool = False,
    names: Sequence[str | None] | None = None,
    progress: ProgressFn | None = None,
) -> JudgeReport:
    """Judge the answers of `run_dirs` pairwise with `judge_backend` and append the verdicts to `out_path`.

    n: matches to schedule (balanced pairwise-n; None = every match). both_orders: judge each match in both
    presentation orders (a disagreement is a tie when ranked); False judges one order per match, drawn at random,
    and the ranking fits a first-position term. Raises JudgeFailedError when the backend fails part-way, with
    every verdict so far on disk; re-running the same call resumes."""
    jp, answers = check_inputs(run_dirs, n=n, prompt=prompt, names=names)
    out_path = Path(out_path)
    models = sorted(answers)
    qids = sorted({q for a in answers.values() for q in a.by_id}, key=lambda q: (str(type(q)), q))
    calls = schedule(models, qids, n=n, seed=seed, both_orders=both_orders,
                     answered={m: a.by_id.keys() for m, a in answers.items()})
    gen = GenParams(max_tokens=max_tokens, temperature=temperature)
    fingerprint = judge_backend.fingerprint()
    identity = {"judge": fingerprint, "prompt_sha256": jp.sha256, "gen": gen.to_json(), "system_role": system_role,
                "both_orders": both_orders, "task": TASK}
    with _exclusive(out_path):
        return _judge_pass(judge_backend, out_path, jp, answers, calls, gen, identity, n=n, seed=seed,
                           both_orders=both_orders, system_role=system_role, retry_errors=retry_errors,
                           progress=progress)


def answers_sha256(answers: dict[str, Answers], match) -> str:
    """What a verdict on `match` depends on: the question and both models' answers (in the match's sorted
    model order, so both presentation orders share it). Every judgment line carries it, so a resume after a
    model's answers changed re-judges exactly the matches whose answers changed."""
    q = match.question_id
    question = answers[match.model_x].by_id[q][0]
    return sha256_text(json.dumps([question, answers[match.model_x].by_id[q][1], answers[match.model_y].by_id[q][1]],
                                  ensure_ascii=False))


@dataclass
class _Plan:
    """A pass: the calls still to make, and what the file already holds."""

    pending: list[Call]
    hashes: dict[tuple[str, str], str]  # call key -> answers_sha256 of the answers judged now
    stale: int  # calls whose verdict on disk was made on answers that changed since (judged again)


def _unkeyed_answers(old_meta: dict | None) -> dict[str, str]:
    """For lines written before verdicts carried their answers' hash: each model's outputs_sha256 they were
    judged on (recorded once, from the sidecar of that time, and carried forward)."""
    if not old_meta:
        return {}
    kept = old_meta.get("unkeyed_answers")
    if isinstance(kept, dict):
        return kept
    models = old_meta.get("models")
    if not isinstance(models, dict):
        return {}
    return {m: v["outputs_sha256"] for m, v in models.items()
            if isinstance(v, dict) and isinstance(v.get("outputs_sha256"), str)}


def _stale(j: Judgment, current: str, unkeyed: dict[str, str], answers: dict[str, Answers]) -> bool:
    """Whether a line was judged on other answers than those there are now (hash `current`); a line without an
    answers hash is current when the sidecar shows both models' outputs unchanged since."""
    if j.answers_sha256 is not None:
        return j.answers_sha256 != current
    return not all(m in answers and unkeyed.get(m) == answers[m].outputs_sha256 for m in (j.model_a, j.model_b))


def _plan(existing: list[Judgment], calls: list[Call], answers: dict[str, Answers], fingerprint: str,
          retry_errors: bool, unkeyed: dict[str, str]) -> _Plan:
    """The latest line per call (the one `rank` counts) decides: a call is done when that line is a verdict
    (or an unparsable one, unless retry_errors) made on the answers there are now."""
    # (a line without a match id is never the latest of a call: every call has one)
    latest = {(j.match, j.first_model): j for j in existing if j.judge == fingerprint}
    hashes = {c.key: answers_sha256(answers, c.match) for c in calls}
    pending, stale = [], 0
    for c in calls:
        last = latest.get(c.key)
        if last is None or not (last.valid or (last.error_kind == "verdict" and not retry_errors)):
            pending.append(c)
        elif _stale(last, hashes[c.key], unkeyed, answers):
            pending.append(c)
            stale += 1
    return _Plan(pending, hashes, stale)


def _meta(judge_backend, jp: JudgePrompt, answers: dict[str, Answers], identity: dict[str, Any],
          old_meta: dict | None, schedule_info: dict, unkeyed: dict[str, str], has_unkeyed: bool) -> dict:
    old = old_meta or {}
    fingerprint = identity["judge"]
    meta = {
        "format": "jleval-arena-judgments/1",
        "jleval_version": __version__,
        "created_at": old.get("created_at") or _now(),
        "identity": identity,
        "judge": {"name": getattr(judge_backend, "name", None), "fingerprint": fingerprint,
                  "describe": judge_backend.describe()},
        "prompt": {"name": jp.name, "sha256": jp.sha256,
                   "source": "yuzu-ai/japanese-llm-ranking jrank/data/judge_prompts.jsonl 'pair-ja' (Apache-2.0), "
                             "adapted to [[1]]/[[2]]/[[3]] markers"},
        "schedule": schedule_info,
        "models": dict(sorted({**old.get("models", {}), **{  # earlier passes' models are kept
            m: {"run_dir": str(a.run_dir.resolve()), "model_id": a.model_id, "revision": a.revision,
                "answers": len(a.by_id), "missing_answers": a.missing, "outputs_sha256": a.outputs_sha256}
            for m, a in answers.items()}}.items())),
        "history": list(old.get("history", [])),
    }
    if has_unkeyed:
        meta["unkeyed_answers"] = unkeyed
    return meta


def _judgment(call: Call, comp, fingerprint: str, max_tokens: int, answers_hash: str) -> Judgment:
    """The line for one judge completion: its verdict, or why it has none."""
    m = call.match
    first, second = ("a", "b") if call.first == m.model_x else ("b", "a")
    verdict: str | None
    error: str | None
    kind: str | None
    if comp.error is not None:
        verdict, error, kind = None, f"judge call failed: {comp.error}", "judge"
    else:
        verdict, error = parse_verdict(comp.text)
        kind = None if error is None else "verdict"
        if error and comp.finish_reason == "length":
            error += f" (the judge hit max_tokens={max_tokens})"
    winners: dict[str | None, str] = {"1": first, "2": second, "3": "tie"}  # the marker -> the winner
    return Judgment(model_a=m.model_x, model_b=m.model_y, winner=winners.get(verdict), question_id=m.question_id,
                    first=first, match=call.match_id, judge=fingerprint, verdict=verdict, judgment=comp.text,
                    error=error, error_kind=kind, tstamp=round(time.time(), 3), answers_sha256=answers_hash)


def _warn(message: str) -> None:
    logging.getLogger("jleval").warning("warning: judge: %s", message)  # stderr, unless the caller configures logging


def _generate(judge_backend, requests: list[Request], plan: _Plan, out_path: Path, fingerprint: str,
              gen: GenParams, report: JudgeReport, progress: ProgressFn | None) -> None:
    """Send the pass's calls as one batch and append each verdict as it arrives. Prompts that do not fit the
    judge's context (prompt tokens + max_tokens, the check `jleval run` makes) are error verdicts up front,
    counted in a warning before anything is generated, never sent to the judge."""
    from jleval.backends._context import generate_within_context, too_long

    refused = too_long(judge_backend, requests)
    report.too_long = len(refused)
    with JudgmentWriter(out_path) as writer:
        for idx, comp in generate_within_context(judge_backend, requests, _warn, refused=refused):
            call = plan.pending[idx]
            j = _judgment(call, comp, fingerprint, gen.max_tokens, plan.hashes[call.key])
            writer.write(j)
            report.judged += 1
            report.verdict_errors += j.error_kind == "verdict"
            report.judge_errors += j.error_kind == "judge"
            if progress:
                progress(report.judged, len(plan.pending))


def _judge_pass(judge_backend, out_path: Path, jp: JudgePrompt, answers: dict[str, Answers], calls: list[Call],
                gen: GenParams, identity: dict[str, Any], *, n: int | None, seed: int, both_orders: bool,
                system_role: bool, retry_errors: bool, progress: ProgressFn | None) -> JudgeReport:
    existing = read_judgments(out_path, allow_missing=True)
    old_meta = _check_resume(out_path, identity, existing)
    unkeyed = _unkeyed_answers(old_meta)
    plan = _plan(existing, calls, answers, identity["judge"], retry_errors, unkeyed)
    schedule_info = {"kind": "pairwise-all" if n is None else "pairwise-n", "n": n, "seed": seed,
                     "both_orders": both_orders, "calls": len(calls)}
    meta = _meta(judge_backend, jp, answers, identity, old_meta, schedule_info, unkeyed,
                 any(j.answers_sha256 is None for j in existing))
    report = JudgeReport(out_path, meta_path(out_path), sorted(answers), len(calls),
                         len(calls) - len(plan.pending), 0, 0, 0,
                         {m: a.missing for m, a in answers.items() if a.missing}, rejudged=plan.stale)
    entry = {"started_at": _now(), "pending": len(plan.pending), **({"rejudged": plan.stale} if plan.stale else {})}
    meta["history"].append(entry)
    write_meta(out_path, meta)
    if not plan.pending:
        entry.update(finished_at=_now(), judged=0)
        write_meta(out_path, meta)
        return report
    requests = [_render(judge_backend, jp, c, answers, gen, system_role, k) for k, c in enumerate(plan.pending)]
    if progress:  # the total is known before the (one, batched) generate call returns anything
        progress(0, len(plan.pending))
    try:
        _generate(judge_backend, requests, plan, out_path, identity["judge"], gen, report, progress)
    except BaseException as e:  # noqa: BLE001 - keep the history honest (even on Ctrl-C), then say how to resume
        _end_pass(out_path, meta, entry, report, failed=f"{type(e).__name__}: {e}")
        _raise_failure(e, report, len(plan.pending), out_path)
    _end_pass(out_path, meta, entry, report)
    return report


def _end_pass(out_path: Path, meta: dict, entry: dict[str, Any], report: JudgeReport, **failed: str) -> None:
    """Close the pass's history entry (what it judged, and why it failed if it did) and rewrite the sidecar."""
    entry.update(finished_at=_now(), judged=report.judged, verdict_errors=report.verdict_errors,
                 judge_errors=report.judge_errors, **failed)
    write_meta(out_path, meta)


def _raise_failure(failure: BaseException, report: JudgeReport, pending: int, out_path: Path) -> NoReturn:
    if not isinstance(failure, Exception):
        raise failure  # KeyboardInterrupt and friends: everything written so far is on disk
    total_done = report.already_done + report.judged
    raise JudgeFailedError(
        f"the judge failed after {report.judged} of {pending} verdicts in this pass: "
        f"{type(failure).__name__}: {failure}",
        f"the {total_done} verdicts made so far are saved in {out_path}; fix the judge (endpoint, memory) "
        "and re-run the same command to resume") from failure
