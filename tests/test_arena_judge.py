"""Arena judging with a scripted fake judge: strict verdicts, both orders, one batch, resume, bad input."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from jleval.arena import rank_files
from jleval.arena.errors import AnswersError, JudgeFailedError, JudgeSettingsError, UnknownModelError
from jleval.arena.io import meta_path, read_judgments
from jleval.arena.judge import judge, load_prompt, parse_verdict
from jleval.arena.schedule import schedule
from jleval.backends.scripted import ScriptedBackend
from jleval.types import Completion

STRENGTH = {"alpha-7b": 3, "beta-13b": 2, "gamma-1b": 1}
QUESTIONS = ["四国地方の４つの県名を挙げてください。", "日本の最北端はどこですか。", "明治維新とは何ですか。",
             "アベノミクスの三本の矢とは。"]


def make_run(root: Path, model: str, questions=QUESTIONS, errors=(), extra_lines=()) -> Path:
    rd = root / model.replace("/", "_")
    (rd / "outputs").mkdir(parents=True)
    (rd / "manifest.json").write_text(json.dumps({"model": {"id": model, "revision": "main"}}), encoding="utf-8")
    lines = []
    for i, q in enumerate(questions):
        err = "boom" if i in errors else None
        lines.append({"id": i, "input": q, "generation": "" if err else f"<{model}> answer {i}", "error": err})
    lines += list(extra_lines)
    (rd / "outputs" / "rakuda.jsonl").write_text(
        "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return rd


def shown(user: str) -> tuple[str, str]:
    """The model names behind アシスタント1 and アシスタント2 in a rendered judge prompt."""
    a1 = user.split("[アシスタント1の回答の開始]")[1].split("[アシスタント1の回答の終了]")[0]
    a2 = user.split("[アシスタント2の回答の開始]")[1].split("[アシスタント2の回答の終了]")[0]
    return a1.split("<")[1].split(">")[0], a2.split("<")[1].split(">")[0]


def FakeJudge(decide=None, fail_after=None, error_for=lambda first, second: False, ident="fake-judge"):
    """The library's scripted backend as a judge: `decide(first, second, request)` returns the judge's text;
    completions come back in a shuffled order; `fail_after` raises mid-batch; `error_for` returns failed
    completions."""
    decide = decide or (lambda f, s, r: "評価…\n" + ("[[1]]" if STRENGTH[f] > STRENGTH[s] else "[[2]]"))

    def answer(req):
        first, second = shown(req.messages[-1][1])
        if error_for(first, second):
            return Completion(text="", finish_reason="error", error="HTTP 500")
        return decide(first, second, req)

    return ScriptedBackend(answer, model=ident, fingerprint=ident, crash_after=fail_after,
                           crash=RuntimeError("connection reset by judge endpoint"), shuffle_seed=1)


@pytest.fixture
def runs(tmp_path):
    return [make_run(tmp_path / "runs", m) for m in STRENGTH]


# ----- verdict parsing ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, verdict", [
    ("アシスタント1の回答がより正確です。\n[[1]]", "1"),
    ("[[2]]", "2"),
    ("どちらも同程度です。\n[[3]]\n", "3"),
    ("判定：［［１］］", "1"),  # full-width digit and brackets (NFKC)
    ("[[ 2 ]]", "2"),
    ("出力形式は[[1]]、[[2]]、[[3]]のいずれかです。\n結論:\n[[2]]", "2"),  # markers quoted, last line decides
    ("アシスタント1が良い[[1]]。総合的にも[[1]]。", "1"),
])
def test_parse_verdict_accepts_strict_markers(text, verdict):
    assert parse_verdict(text) == (verdict, None)


@pytest.mark.parametrize("text, why", [
    # Rakuda's own sample: a stated tie whose last digit is the "2" of アシスタント2 -> must not be a win
    ("アシスタント1とアシスタント2のどちらが優れているか選べません。アシスタント2", "no verdict marker"),
    ("3", "no verdict marker"),
    ("", "no verdict marker"),
    ("[1]", "no verdict marker"),
    ("[[4]]", "no verdict marker"),
    ("前半は[[1]]、後半は[[2]]。\n[[1]] または [[2]]", "conflicting"),
])
def test_parse_verdict_rejects_everything_else(text, why):
    verdict, error = parse_verdict(text)
    assert verdict is None and why in error


def test_bundled_prompt_keeps_rakuda_text_and_markers():
    p = load_prompt()
    assert "回答の質をチェックするための審判員" in p.system and "[[3]]" in p.system
    system, user = p.render("質問{answer_2}", "A {question}", "B")
    assert user.startswith("[質問]\n質問{answer_2}") and "A {question}" in user  # no double substitution
    assert not p.system.startswith("#") and len(p.sha256) == 64


# ----- judging ------------------------------------------------------------------------------------------------

def test_judge_all_matches_both_orders_in_one_batch(tmp_path, runs):
    fake = FakeJudge()
    out = tmp_path / "judgments.jsonl"
    rep = judge(fake, runs, out)
    assert fake.batches == [3 * 4 * 2]  # 3 pairs x 4 questions x 2 orders, one batch
    assert rep.judged == rep.scheduled == 24 and rep.verdict_errors == rep.judge_errors == 0
    lines = read_judgments(out)
    assert len(lines) == 24 and all(j.valid and j.judge == "fake-judge" for j in lines)
    # every match judged once per order, with the right model shown first
    keys = {(j.match, j.first_model) for j in lines}
    assert len(keys) == 24
    req = fake.requests[0]
    assert req.messages[0][0] == "system" and req.prompt.startswith("<|system|>")
    meta = json.loads(meta_path(out).read_text(encoding="utf-8"))
    assert meta["identity"]["prompt_sha256"] == load_prompt().sha256
    assert meta["identity"]["gen"]["max_tokens"] == 2048 and meta["identity"]["gen"]["temperature"] == 0.0
    assert set(meta["models"]) == set(STRENGTH) and meta["history"][-1]["judged"] == 24
    ranking = rank_files([out], runs=runs, n_bootstrap=200)
    assert [r.model for r in ranking.rows] == ["alpha-7b", "beta-13b", "gamma-1b"]
    assert ranking.stats["both_orders"] == 12 and ranking.position is None


def test_position_biased_judge_both_orders_gives_ties(tmp_path, runs):
    """A judge that always prefers the first answer disagrees with itself on every swap: all ties."""
    out = tmp_path / "j.jsonl"
    judge(FakeJudge(decide=lambda f, s, r: "[[1]]"), runs, out)
    ranking = rank_files([out], n_bootstrap=100)
    assert ranking.stats["disagreements"] == 12
    assert all(abs(r.rating - 1000) < 1e-6 for r in ranking.rows)
    assert all(r.ties == r.matches for r in ranking.rows)


def test_single_order_fits_the_position_term(tmp_path, runs):
    rng = random.Random(0)

    def biased(first, second, req):  # the first answer wins 80% of the time, whatever the models
        return "[[1]]" if rng.random() < 0.8 else "[[2]]"

    out = tmp_path / "j.jsonl"
    rep = judge(FakeJudge(decide=biased), runs, out, both_orders=False)
    assert rep.judged == 3 * 2 * 4  # every ordered triple
    ranking = rank_files([out], n_bootstrap=200)
    assert ranking.stats["single_order"] == 24 and ranking.position["strength"] > 0.5


def test_unparsable_verdicts_are_errors_never_wins(tmp_path, runs):
    def sloppy(first, second, req):  # gamma's matches get Rakuda-style bare digits
        if "gamma-1b" in (first, second):
            return "アシスタント1もアシスタント2も同程度です。\n2"
        return "[[1]]" if STRENGTH[first] > STRENGTH[second] else "[[2]]"

    out = tmp_path / "j.jsonl"
    rep = judge(FakeJudge(decide=sloppy), runs, out)
    assert rep.verdict_errors == 16 and rep.judged == 24
    bad = [j for j in read_judgments(out) if not j.valid]
    assert len(bad) == 16 and all(j.winner is None and j.error_kind == "verdict" for j in bad)
    assert all("no verdict marker" in j.error for j in bad) and bad[0].judgment.endswith("2")
    ranking = rank_files([out], n_bootstrap=50)
    assert {r.model for r in ranking.rows} == {"alpha-7b", "beta-13b"}  # gamma has no usable verdict
    assert ranking.stats["errors"] == 16 and any("16 judgment line(s)" in w for w in ranking.warnings)
    # a re-run does not re-ask unparsable verdicts (same greedy judge) unless told to
    again = FakeJudge(decide=sloppy)
    assert judge(again, runs, out).judged == 0 and again.batches == []
    fixed = FakeJudge()
    assert judge(fixed, runs, out, retry_errors=True).judged == 16
    assert len(rank_files([out], n_bootstrap=50).rows) == 3


def test_judge_failing_mid_run_keeps_every_verdict_and_resumes(tmp_path, runs):
    out = tmp_path / "j.jsonl"
    with pytest.raises(JudgeFailedError) as e:
        judge(FakeJudge(fail_after=10), runs, out)
    assert "after 10 of 24" in str(e.value) and "re-run the same command to resume" in str(e.value)
    assert len(read_judgments(out)) == 10
    meta = json.loads(meta_path(out).read_text(encoding="utf-8"))
    assert "connection reset" in meta["history"][-1]["failed"]
    # a crash mid-write leaves half a line: it is cut off, not parsed or duplicated
    with open(out, "a", encoding="utf-8") as f:
        f.write('{"model_a": "alpha-7b", "mod')
    assert len(read_judgments(out)) == 10
    fake = FakeJudge()
    rep = judge(fake, runs, out)
    assert fake.batches == [14] and rep.already_done == 10 and rep.judged == 14
    lines = read_judgments(out)
    assert len(lines) == 24 and len({(j.match, j.first_model) for j in lines}) == 24
    assert out.read_text(encoding="utf-8").endswith("\n")


def test_failed_judge_calls_are_recorded_and_retried(tmp_path, runs):
    out = tmp_path / "j.jsonl"
    rep = judge(FakeJudge(error_for=lambda f, s: f == "gamma-1b"), runs, out)
    assert rep.judge_errors == 8
    assert sum(1 for j in read_judgments(out) if j.error_kind == "judge") == 8
    fake = FakeJudge()
    assert judge(fake, runs, out).judged == 8 and fake.batches == [8]
    ranking = rank_files([out], n_bootstrap=50)
    assert ranking.stats["superseded"] == 8 and ranking.stats["errors"] == 0 and ranking.stats["both_orders"] == 12


def test_pairwise_n_schedule_and_extension(tmp_path, runs):
    out = tmp_path / "j.jsonl"
    rep = judge(FakeJudge(), runs, out, n=5, seed=3)
    assert rep.scheduled == 10 and rep.judged == 10
    fake = FakeJudge()
    rep = judge(fake, runs, out, n=8, seed=3)  # the n=8 schedule starts with the n=5 one: only 3 new matches
    assert rep.already_done == 10 and fake.batches == [6]


def test_resume_refuses_other_settings(tmp_path, runs):
    out = tmp_path / "j.jsonl"
    judge(FakeJudge(), runs, out, n=2)
    with pytest.raises(JudgeSettingsError, match="max_tokens|gen"):
        judge(FakeJudge(), runs, out, n=2, max_tokens=512)
    with pytest.raises(JudgeSettingsError, match="judge"):
        judge(FakeJudge(ident="another-judge"), runs, out, n=2)
    prompt = tmp_path / "p.txt"
    prompt.write_text("=== system ===\n審判です。\n=== user ===\n{question}\n{answer_1}\n{answer_2}\n", encoding="utf-8")
    with pytest.raises(JudgeSettingsError, match="prompt_sha256"):
        judge(FakeJudge(), runs, out, n=2, prompt=prompt)
    meta_path(out).unlink()  # without the sidecar, lines from another judge still refuse a mix
    with pytest.raises(JudgeSettingsError, match="another judge"):
        judge(FakeJudge(ident="another-judge"), runs, out, n=2)


def test_system_role_off_puts_instructions_in_the_user_turn(tmp_path, runs):
    fake = FakeJudge()
    judge(fake, runs, tmp_path / "j.jsonl", n=1, system_role=False)
    msgs = fake.requests[0].messages
    assert len(msgs) == 1 and msgs[0][0] == "user" and msgs[0][1].startswith("あなたは、回答の質")


# ----- bad answers --------------------------------------------------------------------------------------------

def test_answers_with_errors_are_not_judged(tmp_path):
    runs = [make_run(tmp_path, "alpha-7b"), make_run(tmp_path, "beta-13b", errors=(1, 2))]
    fake = FakeJudge()
    rep = judge(fake, runs, tmp_path / "j.jsonl")
    assert rep.scheduled == 2 * 2 and rep.missing_answers == {"beta-13b": 2}


def test_bad_run_folders(tmp_path):
    good = make_run(tmp_path, "alpha-7b")
    with pytest.raises(AnswersError, match="no manifest.json"):
        judge(FakeJudge(), [good, tmp_path / "nothing"], tmp_path / "j.jsonl")
    norun = make_run(tmp_path, "beta-13b")
    (norun / "outputs" / "rakuda.jsonl").unlink()
    with pytest.raises(AnswersError, match="jleval run beta-13b --tasks rakuda"):
        judge(FakeJudge(), [good, norun], tmp_path / "j.jsonl")
    twin = make_run(tmp_path / "other", "alpha-7b")
    with pytest.raises(AnswersError, match="two run folders answer as model 'alpha-7b'"):
        judge(FakeJudge(), [good, twin], tmp_path / "j.jsonl")
    other = make_run(tmp_path, "delta", questions=["別の質問"] + QUESTIONS[1:])
    with pytest.raises(AnswersError, match="question 0 differs"):
        judge(FakeJudge(), [good, other], tmp_path / "j.jsonl")
    assert not (tmp_path / "j.jsonl").exists()


def test_rank_with_runs_rejects_unknown_models(tmp_path, runs):
    out = tmp_path / "j.jsonl"
    judge(FakeJudge(), runs, out, n=6)
    with pytest.raises(UnknownModelError, match="gamma-1b"):
        rank_files([out], runs=runs[:2])


# ----- the schedule -------------------------------------------------------------------------------------------

def test_schedule_is_balanced_seeded_and_extends():
    models = [f"m{k}" for k in range(7)]
    qs = list(range(40))
    calls = schedule(models, qs, n=100, seed=5)
    assert len(calls) == 200
    counts = dict.fromkeys(models, 0)
    for c in calls[::2]:
        counts[c.match.model_x] += 1
        counts[c.match.model_y] += 1
    assert max(counts.values()) - min(counts.values()) <= 2
    assert calls == schedule(models, qs, n=100, seed=5)
    assert calls != schedule(models, qs, n=100, seed=6)
    assert schedule(models, qs, n=150, seed=5)[:200] == calls
    assert len({c.key for c in calls}) == 200
    single = schedule(models, qs, n=300, seed=1, both_orders=False)
    firsts = sum(c.first == c.match.model_x for c in single)
    assert len(single) == 300 and 100 < firsts < 200  # both orders occur
    assert len(schedule(models[:3], qs[:2], n=10**6)) == 3 * 2 * 2  # n beyond the total: every match
    only = schedule(["a", "b", "c"], [0, 1], answered={"a": {0, 1}, "b": {0}, "c": {1}})
    assert {(c.match.question_id, c.match.model_x, c.match.model_y) for c in only} == {(0, "a", "b"), (1, "a", "c")}


def test_one_judging_process_per_file(tmp_path, runs):
    import fcntl

    from jleval.arena.errors import ArenaError

    out = tmp_path / "j.jsonl"
    with open(tmp_path / ".j.jsonl.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ArenaError, match="another `jleval arena judge` is writing"):
            judge(FakeJudge(), runs, out, n=1)
    assert judge(FakeJudge(), runs, out, n=1).judged == 2


def test_real_backend_as_judge(tmp_path, runs, tiny_model):
    """The transformers backend with the tiny random-weight model as the judge: the protocol end to end. Its
    verdicts are noise without markers, so every line is an error and there is nothing to rank."""
    from jleval.arena.errors import EmptyJudgmentsError
    from jleval.backends.hf import HFBackend

    backend = HFBackend(str(tiny_model), device="cpu")
    try:
        out = tmp_path / "j.jsonl"
        rep = judge(backend, runs, out, n=2, max_tokens=8)
        fingerprint = backend.fingerprint()
    finally:
        backend.close()
    assert rep.judged == 4 and rep.verdict_errors + rep.judge_errors == 4
    lines = read_judgments(out)
    assert all(j.winner is None and j.error and j.judge == fingerprint for j in lines)
    meta = json.loads(meta_path(out).read_text(encoding="utf-8"))
    assert meta["judge"]["fingerprint"] == fingerprint and meta["judge"]["describe"]
    with pytest.raises(EmptyJudgmentsError, match="none of the 4 judgment lines"):
        rank_files([out])


def test_names_override_model_ids(tmp_path):
    runs = [make_run(tmp_path / "a", "alpha-7b"), make_run(tmp_path / "b", "alpha-7b")]  # same model twice
    rep = judge(FakeJudge(decide=lambda f, s, r: "[[3]]"), runs, tmp_path / "j.jsonl", n=3,
                names=[None, "alpha-7b-rerun"])
    assert rep.models == ["alpha-7b", "alpha-7b-rerun"] and rep.judged == 6


def test_rank_with_runs_knows_names_given_at_judging_time(tmp_path, runs):
    out = tmp_path / "j.jsonl"
    judge(FakeJudge(), runs, out, n=6, names=["alpha", None, None])
    assert {r.model for r in rank_files([out], runs=runs, n_bootstrap=20).rows} == {"alpha", "beta-13b", "gamma-1b"}
    with pytest.raises(UnknownModelError, match="alpha"):
        rank_files([out], runs=runs[1:], n_bootstrap=20)


# ----- answers that change between passes (issue 16) ------------------------------------------------------------

def _rewrite_answer(run_dir: Path, qid: int, text: str) -> None:
    path = run_dir / "outputs" / "rakuda.jsonl"
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    rows.append({**rows[qid], "generation": text})  # a re-run appends; the last line per id wins
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _prefers_best(first, second, req):
    """Like the default judge, except that an answer saying BEST always wins."""
    user = req.messages[-1][1]
    a1 = user.split("[アシスタント1の回答の開始]")[1].split("[アシスタント1の回答の終了]")[0]
    a2 = user.split("[アシスタント2の回答の開始]")[1].split("[アシスタント2の回答の終了]")[0]
    if ("BEST" in a1) != ("BEST" in a2):
        return "[[1]]" if "BEST" in a1 else "[[2]]"
    return "[[1]]" if STRENGTH[first] > STRENGTH[second] else "[[2]]"


def test_resume_rejudges_only_the_matches_whose_answers_changed(tmp_path, runs):
    out = tmp_path / "j.jsonl"
    judge(FakeJudge(decide=_prefers_best), runs, out)
    _rewrite_answer(runs[2], 1, "<gamma-1b> answer 1 BEST")  # gamma's answer to question 1 changed
    fake = FakeJudge(decide=_prefers_best)
    rep = judge(fake, runs, out)
    # gamma plays alpha and beta on question 1, in both orders: 4 calls, and nothing else
    assert rep.rejudged == 4 and rep.judged == 4 and fake.batches == [4] and rep.already_done == 20
    assert all("BEST" in r.messages[-1][1] for r in fake.requests)
    meta = json.loads(meta_path(out).read_text(encoding="utf-8"))
    assert meta["history"][-1]["rejudged"] == 4
    # the new verdicts supersede the old ones in the ranking: gamma now wins question 1 against both
    ranking = rank_files([out], n_bootstrap=50)
    assert ranking.stats["superseded"] == 4
    gamma = next(r for r in ranking.rows if r.model == "gamma-1b")
    assert gamma.wins == 2
    # a third pass has nothing left to do
    assert judge(FakeJudge(decide=_prefers_best), runs, out).judged == 0


def test_lines_without_answer_hashes_are_trusted_only_while_the_outputs_are_unchanged(tmp_path, runs):
    out = tmp_path / "j.jsonl"
    judge(FakeJudge(), runs, out)
    # a judgments file written before lines carried their answers' hash
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    out.write_text("".join(json.dumps({k: v for k, v in x.items() if k != "answers_sha256"}) + "\n" for x in lines),
                   encoding="utf-8")
    assert judge(FakeJudge(), runs, out).judged == 0  # outputs unchanged: every verdict still stands
    _rewrite_answer(runs[0], 3, "<alpha-7b> answer 3, revised")
    fake = FakeJudge()
    rep = judge(fake, runs, out)
    # which of alpha's answers changed is unknown for those lines: every match of alpha is judged again
    assert rep.rejudged == rep.judged == 16 and fake.batches == [16]
    assert judge(FakeJudge(), runs, out).judged == 0


def test_judge_prompts_past_the_judges_context_are_refused_up_front(tmp_path, tiny_model, caplog):
    """A judge prompt that cannot fit the judge's context (prompt + max_tokens > its max length) is an error
    verdict before anything is generated, counted in a warning; the others are judged and every verdict is on
    disk, with the progress total known from the start (the check `jleval run` makes)."""
    from jleval.backends.hf import HFBackend
    from jleval.tiny import CONTEXT

    long_q = "".join(QUESTIONS) * (2 * CONTEXT // len("".join(QUESTIONS)))  # well past the tiny model's context
    runs = [make_run(tmp_path / "runs", m, questions=[QUESTIONS[0], long_q]) for m in ("alpha-7b", "beta-13b")]
    backend = HFBackend(str(tiny_model), device="cpu")
    seen = []
    try:
        with caplog.at_level("WARNING", logger="jleval"):
            rep = judge(backend, runs, tmp_path / "j.jsonl", max_tokens=8, progress=lambda d, t: seen.append((d, t)))
    finally:
        backend.close()
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    assert rep.judged == 4 and rep.too_long == 2
    assert "2 prompt(s) plus their output length exceed the model's context of 4096 tokens" in caplog.text
    lines = read_judgments(tmp_path / "j.jsonl")
    refused = [j for j in lines if j.question_id == 1]
    assert len(lines) == 4 and len(refused) == 2
    assert all(j.error_kind == "judge" and f"more than the model's context of {CONTEXT} tokens" in j.error
               and j.judgment == "" for j in refused)
    assert all("context" not in (j.error or "") for j in lines if j.question_id == 0)
