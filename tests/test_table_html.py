"""The HTML leaderboard page: the columns shown first and the ones folded, the sticky run column, sort toggling,
the sorted-by caption, the run's metadata on hover and the MIXED mark; checked in headless Chromium when it is
installed (skipped otherwise): a screenshot, and the DOM after scripted clicks (the page's `#click=` hook)."""
from __future__ import annotations

import html as htmllib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_table import make_run

from jleval import table
from jleval.render.files import write_leaderboard

LABELS = {"jamp": ["entailment", "contradiction", "neutral"], "jnli": ["entailment", "contradiction", "neutral"],
          "jcommonsenseqa": ["0", "1", "2", "3", "4"], "kuci": ["0", "1", "2", "3"], "jmmlu": ["A", "B", "C", "D"],
          "mawps": ["12", "7", "30"], "niilc": ["東京", "大阪", "京都"]}
LONG = "swallow-mistral-7b-instruct-v0.2-with-a-very-long-run-name_dev_4shot"


def _page(tmp_path: Path, mixed: bool = False, charts: bool = False) -> Path:
    """A leaderboard of 4 runs over 7 tasks in 6 categories (about 40 columns in the CSV); with `mixed`, a
    0-shot run ranked with them (--allow-mixed)."""
    runs = [make_run(tmp_path / "runs", name, acc, n=30, task_labels=LABELS)
            for name, acc in (("strong", 0.85), ("mid", 0.7), (LONG, 0.6), ("weak", 0.3))]
    if mixed:
        runs.append(make_run(tmp_path / "runs", "zero_shot", 0.5, n=30, task_labels=LABELS, shots=0))
    lb = table.build(runs, allow_mixed=mixed)
    write_leaderboard(lb, tmp_path / "out" / "leaderboard.csv", charts=charts)
    return tmp_path / "out" / "leaderboard.html"


def _headers(page: str) -> list[tuple[str, str]]:
    """(column, group class) of every column header."""
    return re.findall(r'<th class="col g-(\w+) c-[^"]*" data-col="([^"]+)"', page)


def test_page_columns_sort_directions_metadata_and_mixed_mark(tmp_path):
    page = _page(tmp_path, mixed=True).read_text(encoding="utf-8")
    heads = [(col, group) for group, col in _headers(page)]
    shown = [c for c, g in heads if g not in ("metric", "info")]
    # AVG and the categories first, only the categories some run has; the per-task metrics and settings folded
    assert shown == ["rank", "run", "AVG", "NLI", "QA", "MC", "MR", "HE", "better_than_next"]
    assert {g for c, g in heads if c.endswith(("_exact_match", "_char_f1", "_out_of_label"))} == {"metric"}
    assert {g for c, g in heads if c in ("model", "num_few_shots", "prompt_style", "backend")} == {"info"}
    assert "RC" not in dict(heads) and "CG" not in dict(heads)  # no run has a value there: left out of the page
    assert re.search(r'<table id="lb" class="fold-metric fold-info ', page)
    assert "table.fold-metric .g-metric{display:none}" in page
    # the run column is sticky; rank sorts ascending first, scores best first, out-of-label rates lowest first
    assert re.search(r"\.c-run\{position:sticky;left:0", page)
    first = dict(re.findall(r'data-col="([^"]+)" data-num="\d" data-first="(\w+)"', page))
    assert first["rank"] == "asc" and first["AVG"] == "desc" and first["jamp_out_of_label"] == "asc"
    assert first["run"] == "asc"
    # the run's model and settings on hover; the MIXED mark on the row that differs, saying in what
    about = htmllib.unescape(re.search(r'data-v="zero_shot" title="([^"]*)"', page).group(1))
    assert "model zero_shot" in about and "0-shot" in about and "backend synthetic" in about
    marks = re.findall(r'<span class=mixed title="([^"]*)">MIXED</span>', page)
    assert marks == ["MIXED: this run differs in num_few_shots=0"]
    # columns where every row ties mark no "best" cell (out-of-label rates all 0 here)
    assert not re.search(r'c-jamp_out_of_label best', page)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(args: list[str], url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            "--no-first-run", f"--user-data-dir={profile}", "--window-size=1400,900", *args, url],
                           capture_output=True, text=True, timeout=120, check=False)
    return r.stdout


def _after(page: Path, clicks: str) -> tuple[list[str], str, dict]:
    """Row order (run names), the sorted-by caption and the layout probe after the scripted clicks."""
    dom = _browser(["--dump-dom"], f"{page.as_uri()}#click={clicks},probe")
    runs = re.findall(r'<td class="g-head c-run"[^>]*data-v="([^"]+)"', dom)
    caption = re.search(r'id="sorted-by">([^<]*)<', dom).group(1)
    probe = json.loads(htmllib.unescape(re.search(r'data-probe="([^"]*)"', dom).group(1)))
    return runs, caption, probe


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no chromium installed")
def test_page_in_headless_chromium(tmp_path):
    from PIL import Image

    page = _page(tmp_path)
    shot = tmp_path / "page.png"
    _browser([f"--screenshot={shot}"], page.as_uri())
    with Image.open(shot) as im:
        assert im.size == (1400, 900)
        assert sum(1 for n in im.convert("L").histogram() if n) > 20  # something was drawn
    order = ["strong", "mid", LONG, "weak"]
    runs, caption, probe = _after(page, "")
    assert runs == order and caption == "Sorted by AVG (best first)"
    # at 1400 px every column shown first is visible without scrolling
    assert probe["visible"] == ["rank", "run", "AVG", "NLI", "QA", "MC", "MR", "HE", "better_than_next"]
    # the first click on rank sorts 1, 2, 3 (best first); a second click reverses; the caption follows
    runs, caption, _ = _after(page, "AVG,rank")
    assert runs == order and caption == "Sorted by rank (best first)"
    runs, caption, _ = _after(page, "rank,rank")
    assert runs == order[::-1] and caption == "Sorted by rank (reversed)"
    runs, caption, _ = _after(page, "AVG")  # already sorted by AVG: the first click reverses
    assert runs == order[::-1] and caption == "Sorted by AVG (reversed)"
    runs, caption, _ = _after(page, "run")
    assert runs == sorted(order) and caption == "Sorted by run (A→Z)"
    # the metric columns unfold; scrolled to the right end, the run column stays where it was
    _, _, still = _after(page, "toggle")
    _, _, moved = _after(page, "toggle,scroll")
    assert "jamp_exact_match" in still["visible"] and moved["scrolled"] > 300
    assert moved["runLeft"] == pytest.approx(still["runLeft"], abs=1)
