"""Progress a user can read (issue 17 item 4): `run` has an overall bar (all samples, ETA, tokens/s) over its task
bars; `preprocess` reports each task as it starts; `arena judge` knows its total before the first verdict."""
from __future__ import annotations

import io

from own_task_fixtures import make_task_dir, rows, write_jsonl
from rich.console import Console

from jleval.backends.scripted import ScriptedBackend
from jleval.jaster.preprocess import preprocess
from jleval.render.progress import OVERALL, PreprocessProgress, RunProgress
from jleval.run import RunOptions, run
from jleval.tasks import resolve_tasks
from jleval.types import Completion


def _two_tasks(tmp_path):
    d = make_task_dir(tmp_path / "mytasks", dev=12)
    (d / "hikizan.toml").write_text((d / "tashizan.toml").read_text(encoding="utf-8").replace("tashizan", "hikizan")
                                    .replace('"data/test.jsonl"', '"h.jsonl"'), encoding="utf-8")
    write_jsonl(d / "h.jsonl", rows(5, 7))
    return d


def test_run_progress_has_an_overall_bar_with_tokens_per_second(tmp_path):
    tasks = _two_tasks(tmp_path)
    common = dict(model="m", backend="scripted", tasks="tashizan,hikizan", tasks_dir=tasks, data_dir=tmp_path / "d",
                  out=tmp_path / "runs", run_name="r", max_num_samples=8)
    run(RunOptions(**common), backend=ScriptedBackend(lambda r: Completion(text=r.gold, completion_tokens=3)))
    more = RunOptions(**{**common, "max_num_samples": 10})  # 8 of 10 per task come from the cache
    console = Console(file=io.StringIO(), width=120)
    with RunProgress(console) as progress:
        run(more, progress=progress,
            backend=ScriptedBackend(lambda r: Completion(text=r.gold, completion_tokens=3)))
        bars = {t.description.replace("[bold]", ""): t for t in progress.__self__._p.tasks}
    assert set(bars) == {OVERALL, "tashizan", "hikizan"}
    assert (bars[OVERALL].total, bars[OVERALL].completed) == (20, 20)
    assert all((bars[t].total, bars[t].completed) == (10, 10) for t in ("tashizan", "hikizan"))
    assert bars[OVERALL].fields["tps"].endswith(" tok/s") and bars[OVERALL].fields["tps"] != "0 tok/s"


def test_preprocess_reports_each_task_as_it_starts(tmp_path):
    tasks = _two_tasks(tmp_path)
    specs = resolve_tasks("tashizan,hikizan", tasks_dir=tasks)
    calls = []
    preprocess(specs, tmp_path / "d", on_task=lambda *a: calls.append(a))
    assert calls == [(0, 2, "tashizan"), (1, 2, "hikizan"), (2, 2, "")]
    console = Console(file=io.StringIO(), width=120)
    with PreprocessProgress(console) as (on_task, reporter):
        preprocess(specs, tmp_path / "d2", on_task=on_task, reporter=reporter)
        bar = on_task.__self__._p.tasks[0]
    assert (bar.completed, bar.total, bar.description) == (2, 2, "preprocessed 2 tasks")


def test_judge_progress_knows_its_total_before_the_first_verdict(tmp_path):
    from test_arena_judge import FakeJudge, make_run

    from jleval.arena.judge import judge

    runs = [make_run(tmp_path, m) for m in ("alpha-7b", "beta-13b", "gamma-1b")]
    fake = FakeJudge()
    calls = []
    judge(fake, runs, tmp_path / "j.jsonl", progress=lambda done, total: calls.append((done, total)))
    n = len(fake.requests)
    assert n > 0 and calls[0] == (0, n) and calls[-1] == (n, n) and len(calls) == n + 1
