"""`jleval view`: the per-sample HTML report, built from real run folders (a scripted backend that answers right,
wrong or with an error by sample id, and the oracle), checked in its data files and, when Chromium is installed,
in a real headless browser (DOM after the scripts ran, and screenshots)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from own_task_fixtures import jleval, make_task_dir

from jleval.errors import UsageError
from jleval.fsutil import sha256_text
from jleval.run import RunOptions, run
from jleval.types import Completion
from jleval.view import build_view

N = 24


class Scripted:
    """Right for most ids, a wrong answer when id % 3 == 1, an error when id % 5 == 4."""

    name = "scripted"

    def describe(self):
        return {"backend": self.name}

    def generate(self, requests):
        for i, r in enumerate(requests):
            if r.sample_id % 5 == 4:
                yield i, Completion(text="", finish_reason="error", error="HTTP 503 after 5 retries <b>x</b>")
            elif r.sample_id % 3 == 1:
                yield i, Completion(text="<script>alert(1)</script>", finish_reason="stop", completion_tokens=4)
            else:
                yield i, Completion(text=r.gold + "\n\n余計な説明", finish_reason="stop", completion_tokens=3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("view")
    task_dir = make_task_dir(root / "mytasks", dev=N)
    common = dict(tasks="tashizan", tasks_dir=task_dir, data_dir=root / "data", out=root / "runs")
    a = run(RunOptions(model="scripted", backend="oracle", run_name="a", **common), backend=Scripted()).run_dir
    b = run(RunOptions(model="oracle", backend="oracle", run_name="b", **common)).run_dir
    return {"root": root, "a": a, "b": b, "tasks_dir": task_dir, "data": root / "data"}


def chunks(out: Path) -> list[dict]:
    rows = []
    for p in sorted((out / "data").glob("c*.js")):
        m = re.fullmatch(r"jlevalChunk\((\d+),(.*)\);\n", p.read_text(encoding="utf-8"), re.S)
        assert m, p
        rows += json.loads(m.group(2))
    return rows


def meta_of(out: Path) -> dict:
    text = (out / "data" / "meta.js").read_text(encoding="utf-8")
    return json.loads(text[len("jlevalMeta("):-len(");\n")])


def test_one_run_every_sample_with_prompt_answer_metrics_and_errors(runs, tmp_path):
    out = tmp_path / "report"
    rep = build_view([runs["a"]], out, data_dir=runs["data"], tasks_dir=runs["tasks_dir"], chunk_size=7)
    assert rep.n_samples == N and rep.n_chunks == 4 and rep.tasks == ["tashizan"]
    meta, samples = meta_of(out), chunks(out)
    assert [s["i"] for s in samples] == list(range(N))
    outputs = {r["id"]: r for r in map(json.loads, (runs["a"] / "outputs" / "tashizan.jsonl").read_text(
        encoding="utf-8").splitlines())}
    frame = meta["tasks"][0]["runs"][0]
    assert frame["head"].startswith("以下は、タスクを説明する指示") and "質問に数字で答えてください。" in frame["head"]
    assert frame["tail"] == "\n\n### 応答:\n"
    for s in samples:
        side, row = s["r"][0], outputs[s["i"]]
        assert s["in"] == row["input"] and s["g"] == row["gold"] and side["p"] == 1
        assert sha256_text(frame["head"] + s["in"] + frame["tail"]) == row["prompt_sha256"]  # the prompt the model saw
        if s["i"] % 5 == 4:
            assert side["err"].startswith("HTTP 503") and side["ok"] is None and "pred" not in side
        elif s["i"] % 3 == 1:
            assert side["ok"] is False and side["s"] == {"exact_match": 0.0, "char_f1": 0.0}
        else:
            assert side["ok"] is True and side["pred"] == row["gold"] and side["gen"].endswith("余計な説明")
    wrong = sum(1 for i in range(N) if i % 5 != 4 and i % 3 == 1)
    assert sum(c["counts"]["wrong_any"] for c in meta["chunks"]) == wrong
    assert sum(c["counts"]["error_any"] for c in meta["chunks"]) == sum(1 for i in range(N) if i % 5 == 4)
    assert meta["runs"][0]["name"] == "a" and meta["runs"][0]["split"] == "dev"
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html + (out / "data" / "c00000.js").read_text(encoding="utf-8")  # '<' escaped
    assert "http://" not in html and "https://" not in html  # offline: nothing fetched


def test_two_runs_side_by_side_and_the_out_folder_rules(runs, tmp_path):
    out = tmp_path / "ab"
    build_view([runs["a"], runs["b"]], out, data_dir=runs["data"], tasks_dir=runs["tasks_dir"])
    samples = chunks(out)
    assert all(len(s["r"]) == 2 and s["r"][1]["ok"] is True for s in samples)
    differ = sum(c["counts"]["differ"] for c in meta_of(out)["chunks"])
    assert differ == sum(1 for i in range(N) if i % 5 != 4 and i % 3 == 1)  # errors are neither right nor wrong
    build_view([runs["b"]], out, data_dir=runs["data"], tasks_dir=runs["tasks_dir"])  # an earlier report: replaced
    assert len(meta_of(out)["runs"]) == 1 and not list(tmp_path.glob(".ab*"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(UsageError, match="is not a report written by `jleval view`"):
        build_view([runs["b"]], tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text(encoding="utf-8") == "keep me"
    with pytest.raises(UsageError, match="one or two run folders"):
        build_view([runs["a"], runs["b"], runs["a"]], tmp_path / "x")


def test_prompts_are_left_out_when_they_cannot_be_checked(runs, tmp_path):
    """Without the preprocessed set the prompt cannot be re-rendered: the page says so instead of guessing."""
    out = tmp_path / "r"
    build_view([runs["a"]], out, data_dir=tmp_path / "nothing", tasks_dir=runs["tasks_dir"])
    assert all("p" not in s["r"][0] for s in chunks(out))
    assert "prompt not shown" in meta_of(out)["tasks"][0]["runs"][0]["note"]


@pytest.mark.parametrize("name, field, value", [("manifest.json", "settings", ["dev"]),
                                                ("scores.json", "tasks", None)])
def test_a_wrongly_typed_run_file_is_one_error_naming_it(runs, tmp_path, name, field, value):
    """The manifest and scores are read by their schemas: a field of the wrong type is one error naming the
    file and the field (never a traceback deep in the page's data), and no report is written."""
    run_dir = tmp_path / "runs" / "a"
    shutil.copytree(runs["a"], run_dir)
    data = json.loads((run_dir / name).read_text(encoding="utf-8"))
    data[field] = value
    (run_dir / name).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(UsageError, match=rf"{re.escape(str(run_dir / name))} field '{field}' must be an object"):
        build_view([run_dir], tmp_path / "r", data_dir=runs["data"], tasks_dir=runs["tasks_dir"])
    assert not (tmp_path / "r").exists()


def test_cli(runs, tmp_path):
    r = jleval("view", runs["a"], runs["b"], "--out", tmp_path / "v", "--data-dir", runs["data"],
               "--tasks-dir", runs["tasks_dir"], cwd=tmp_path)
    assert f"{N} samples of 1 tasks" in r.stdout and (tmp_path / "v" / "index.html").is_file()
    r = jleval("view", runs["a"], "--out", tmp_path / "w", "--tasks", "jnli", cwd=tmp_path, check=2)
    assert "no outputs for jnli" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------------------------- in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")


def chromium(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def dom(url: str, tmp_path: Path) -> str:
    r = chromium(url, tmp_path, "--dump-dom")
    assert r.returncode == 0, r.stderr
    return r.stdout


@needs_chromium
@pytest.mark.slow
def test_in_chromium_filters_search_pages_and_screenshots(runs, tmp_path):
    out = tmp_path / "ab"
    build_view([runs["a"], runs["b"]], out, data_dir=runs["data"], tasks_dir=runs["tasks_dir"], chunk_size=5)
    url = (out / "index.html").as_uri()
    page = dom(url, tmp_path)
    assert page.count('<article class="card"') == N and f"{N} samples · page 1 of 1" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    wrong = [i for i in range(N) if i % 5 != 4 and i % 3 == 1]
    page = dom(url + "#filter=wrong_0", tmp_path)
    assert re.findall(r"tashizan #(\d+)", page) == [str(i) for i in wrong]
    page = dom(url + "#filter=error_any", tmp_path)
    assert page.count('<article class="card"') == sum(1 for i in range(N) if i % 5 == 4)
    assert "HTTP 503 after 5 retries &lt;b&gt;x&lt;/b&gt;" in page
    page = dom(url + "#size=20&page=2", tmp_path)
    assert re.findall(r"tashizan #(\d+)", page) == [str(i) for i in range(20, N)] and "page 2 of 2" in page
    inputs = [json.loads(x)["input"] for x in (runs["tasks_dir"] / "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    query = inputs[7].replace("？", "")
    hits = [str(i) for i, x in enumerate(inputs) if query in x]
    page = dom(url + "#q=" + query, tmp_path)
    assert re.findall(r"tashizan #(\d+)", page) == hits and f"{len(hits)} of {N} samples match · page 1 of 1" in page
    shots_rows = [json.loads(x) for x in (runs["tasks_dir"] / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    page = dom(url + "#size=20&prompts=open", tmp_path)  # the prompt, put together from its frame and the input
    prompt = re.search(r"<details open=\"\"><summary>prompt \(\d+ characters\)</summary><pre>(.*?)</pre>", page, re.S).group(1)
    assert prompt.startswith("以下は、タスクを説明する指示") and prompt.endswith(f"{inputs[0]}\n\n### 応答:\n")
    assert all(f"{r['input']}\n\n### 応答:\n{r['output']}" in prompt for r in shots_rows[:4])
    shots = Path(os.environ.get("JLEVAL_VIEW_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    for name, frag in (("view-two-runs", ""), ("view-wrong-in-a", "#filter=wrong_0"),
                       ("view-errors-prompts", "#task=tashizan&filter=error_any&prompts=open")):
        png = shots / f"{name}.png"
        r = chromium(url + frag, tmp_path, f"--screenshot={png}", "--window-size=1400,1000")
        assert r.returncode == 0 and png.stat().st_size > 20_000, r.stderr


class _LineSeparators(Scripted):
    """The gold answer with a U+2028 line separator inside for sample 1 (written unescaped in scores/)."""

    def generate(self, requests):
        for i, r in enumerate(requests):
            yield i, Completion(text=f"{r.gold}\u2028x" if r.sample_id == 1 else r.gold, finish_reason="stop")


def test_a_line_separator_inside_an_answer_is_shown(tmp_path):
    task_dir = make_task_dir(tmp_path / "mytasks", dev=6)
    rd = run(RunOptions(model="scripted", backend="oracle", run_name="a", tasks="tashizan", tasks_dir=task_dir,
                        data_dir=tmp_path / "data", out=tmp_path / "runs"), backend=_LineSeparators()).run_dir
    rep = build_view([rd], tmp_path / "report", data_dir=tmp_path / "data", tasks_dir=task_dir)
    assert rep.n_samples == 6
    side = {s["i"]: s["r"][0] for s in chunks(tmp_path / "report")}
    assert side[1]["pred"].endswith("\u2028x") and side[1]["ok"] is False and side[0]["ok"] is True
