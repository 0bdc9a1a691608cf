"""JaNLI, JSeM, JSICK, KUCI and JCommonsenseMorality converters: real raw files (split sizes, first samples,
label sets, byte-identical reruns), the made-up KUCI fixture, and corrupt input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jleval.errors import MalformedDataError
from jleval.jaster import mc, nli
from jleval.jaster.base import RawFiles
from jleval.jaster.preprocess import preprocess
from jleval.tasks import get_task

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _build(task: str, raw_dir: Path, out: Path) -> dict[str, dict]:
    report = preprocess([get_task(task)], out, raw_dir=raw_dir)
    assert report.results[0].status == "built", report.results[0]
    root = out / "1.4.1" / "evaluation"
    return {split: json.loads((root / split / f"{task}.json").read_text(encoding="utf-8"))
            for split in ("train", "dev", "test")}


REAL = {
    # task: (sizes, first train sample, label set)
    "janli": ((12312, 1368, 720),
              {"input": "前提：スノーボーダーが子供を見ている大人をいじめている\n仮説：スノーボーダーが大人をいじめている",
               "output": "entailment"},
              {"entailment", "non-entailment"}),
    "jsem": ((12667, 1583, 1584),
             {"input": "前提：難しい数学の問題がやっと解けた。\n仮説：難しい数学の問題が解けた。", "output": "yes"},
             {"yes", "no", "unknown", "undef"}),
    "jsick": ((4500, 500, 4927),
              {"input": "前提：二人の子供がカラフルなボールの上に座っている\n仮説：子供たちは黒いタイツを着ていて、びょんびょん跳んでいる",
               "output": "neutral"},
              {"entailment", "contradiction", "neutral"}),
    "commonsensemoralja": ((13975, 1996, 3992),
                           {"input": "文章：コーヒーに泡立てたミルクを入れて友人にふるまった。", "output": "0"},
                           {"0", "1"}),
}


@pytest.mark.parametrize("task", sorted(REAL))
def test_real_files(task, raw_dir, tmp_path):
    sizes, first, labels = REAL[task]
    data = _build(task, raw_dir, tmp_path / "a")
    assert tuple(len(data[s]["samples"]) for s in ("train", "dev", "test")) == sizes
    assert data["train"]["samples"][0] == first
    assert {s["output"] for split in data.values() for s in split["samples"]} == labels
    assert set(data["test"]["label_list"]) == labels
    # a second build is byte-identical
    _build(task, raw_dir, tmp_path / "b")
    for split in ("train", "dev", "test"):
        rel = Path("1.4.1/evaluation") / split / f"{task}.json"
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_janli_test_split_is_the_rows_marked_test(raw_dir):
    rows = (raw_dir / nli.JANLI).read_text(encoding="utf-8").splitlines()[1:]
    marked = [r.split("\t") for r in rows if r.split("\t")[-1] == "test"]
    out = nli.janli(get_task("janli"), RawFiles({nli.JANLI: raw_dir / nli.JANLI}), ("test",))
    assert [s.input for s in out["test"]] == [f"前提：{r[1]}\n仮説：{r[2]}" for r in marked]


def test_jsem_drops_acceptability_answers(raw_dir):
    raw = RawFiles({nli.jsem_path(n): raw_dir / nli.jsem_path(n) for n in nli.JSEM_FILES})
    out = nli.jsem(get_task("jsem"), raw, ("train", "dev", "test"))
    assert sum(map(len, out.values())) == 15834  # yes 10292 + unknown 2970 + no 2548 + undef 24
    # a problem with several premises joins them without a separator
    joined = ("前提：すべてのイタリア人男性が偉大なテノール歌手になりたがっている。何人かのイタリア人男性は偉大なテノール歌手である。"
              "\n仮説：偉大なテノール歌手になりたがっているイタリア人男性がいる。")
    assert joined in [s.input for s in out["train"] + out["dev"] + out["test"]]  # GeneralizedQuantifier #15


def test_jsem_corrupt_xml_names_file_and_line(raw_dir, tmp_path):
    raw_files = {}
    for n in nli.JSEM_FILES:
        dst = tmp_path / nli.jsem_path(n)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(raw_dir / nli.jsem_path(n), dst)
        raw_files[nli.jsem_path(n)] = dst
    bad = raw_files[nli.jsem_path("Ellipsis")]
    lines = bad.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[9] = "    <p idx=\"1\"><script>壊れた</p>\n"  # mismatched tag on line 10
    bad.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(MalformedDataError) as e:
        nli.jsem(get_task("jsem"), RawFiles(raw_files), ("test",))
    assert f"{bad}, line 10" in str(e.value) and "XML" in str(e.value)


def test_kuci_madeup_fixture(tmp_path):
    data = _build("kuci", FIXTURES / "madeup_kuci", tmp_path)
    assert [len(data[s]["samples"]) for s in ("train", "dev", "test")] == [5, 2, 2]
    # spaces of the segmented text removed, choices numbered, label a-d -> 0-3, file order kept
    assert data["train"]["samples"][0] == {
        "input": "文脈：雨が降ってきたので\n選択肢：0.傘をさした,1.窓を開けた,2.日焼け止めを塗った,3.洗濯物を外に干した",
        "output": "0"}
    assert [s["output"] for s in data["train"]["samples"]] == ["0", "1", "0", "2", "3"]
    assert data["test"]["samples"][1]["output"] == "2"
    assert data["dev"]["label_list"] == ["0", "1", "2", "3"]


def test_kuci_bad_label_names_file_and_line(tmp_path):
    for rel in mc.KUCI_FILES.values():
        dst = tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / "madeup_kuci" / rel, dst)
    dev = tmp_path / mc.KUCI_FILES["dev"]
    dev.write_text(dev.read_text(encoding="utf-8").replace('"label": "b"', '"label": "e"'), encoding="utf-8")
    with pytest.raises(MalformedDataError) as e:
        mc.kuci(get_task("kuci"), RawFiles({r: tmp_path / r for r in mc.KUCI_FILES.values()}), ("dev",))
    assert f"{dev}, line 2" in str(e.value)


def test_kuci_missing_is_reported_not_fatal(tmp_path):
    (tmp_path / "empty").mkdir()
    report = preprocess([get_task("kuci")], tmp_path / "out", raw_dir=tmp_path / "empty")
    res = report.results[0]
    assert res.status == "missing" and len(res.missing) == 3
    assert all("github.com/ku-nlp/KUCI" in line or "ku-nlp/KUCI" in line for line in res.missing)
