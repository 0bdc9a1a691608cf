"""The five Wikipedia Annotated Corpus tasks on the real KNP files (upstream's own expected strings, split
sizes, first samples, reruns), corrupt KNP, and the ALT / WikiCorpus converters on made-up fixtures."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jleval.errors import MalformedDataError, TaskSpecError
from jleval.jaster import mt, wiki
from jleval.jaster.base import RawFiles
from jleval.jaster.preprocess import preprocess
from jleval.tasks import get_task

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SPLITS = ("train", "dev", "test")


def _read(out: Path, task: str) -> dict[str, dict]:
    root = out / "1.4.1" / "evaluation"
    return {s: json.loads((root / s / f"{task}.json").read_text(encoding="utf-8")) for s in SPLITS}


# --- Wikipedia Annotated Corpus ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wiki_built(raw_dir, tmp_path_factory):
    """All five wiki tasks built once by `preprocess` (one parse of the corpus, shared)."""
    out = tmp_path_factory.mktemp("wiki")
    report = preprocess([get_task(t) for t in wiki.TASKS], out, raw_dir=raw_dir)
    assert [r.status for r in report.results] == ["built"] * 5, report.results
    return out


def _wac_doc(raw_dir: Path, doc_id: str) -> dict:
    return wiki.doc_samples(raw_dir / wiki.KNP_DIR / doc_id[:8] / f"{doc_id}.knp")


# Upstream's tests (llm-jp-eval tests/jaster/test_wiki_*.py) assert these exact strings for WAC document
# wiki00280639, which is in the v1.1.2 dev split.
UPSTREAM_280639 = {
    "wiki_reading": ("アメリカ議会図書館は、アメリカ合衆国の事実上の国立図書館。",
                     "あめりかぎかいとしょかんは、あめりかがっしゅうこくのじじつじょうのこくりつとしょかん。"),
    "wiki_ner": ("アメリカ議会図書館（アメリカぎかいとしょかん）は、アメリカ合衆国の事実上の国立図書館。", "アメリカ合衆国（地名）"),
    "wiki_dependency": ("アメリカ議会図書館は、アメリカ合衆国の事実上の国立図書館。",
                        "アメリカ議会図書館は、 -> 国立図書館。\nアメリカ合衆国の -> 国立図書館。\n事実上の -> 国立図書館。"),
    "wiki_pas": ("アメリカ議会図書館（アメリカぎかいとしょかん）は、アメリカ合衆国の事実上の国立図書館。",
                 "国立図書館 ガ：アメリカ議会図書館"),
    "wiki_coreference": ("アメリカ議会図書館は、アメリカ合衆国の事実上の国立図書館。",
                         "アメリカ アメリカ合衆国\nアメリカ議会図書館 国立図書館"),
}


@pytest.mark.parametrize("task", wiki.TASKS)
def test_wiki_matches_upstream_expected_strings(task, raw_dir):
    sample = _wac_doc(raw_dir, "wiki00280639")[task]
    assert (sample.input, sample.output) == UPSTREAM_280639[task]


def test_wiki_second_upstream_document(raw_dir):
    doc = _wac_doc(raw_dir, "wiki00132787")  # upstream's second test document
    sp = "\u3000"
    assert doc["wiki_ner"].output == (f"カリフォルニア大学（組織名） Computer{sp}Systems{sp}Research{sp}Group（組織名） "
                                      f"Berkeley{sp}Software{sp}Distribution（固有物名） BSD（固有物名）")
    assert doc["wiki_ner"].input.startswith("BSDライセンス（ビーエスディー\u3000ライセンス）は、")
    assert doc["wiki_ner"].input.endswith(f"Distribution{sp}（BSD）{sp}などで採用されている。")
    assert doc["wiki_reading"].input.endswith(f"Distribution{sp}{sp}などで採用されている。")  # parentheses dropped
    assert doc["wiki_reading"].output.startswith(
        f"びーえすでぃーらいせんすは、ふりーそふとうぇあでつかわれているらいせんすたいけいのひとつである。"
        f"かりふぉるにあだいがくによってさくていされ、どうだいがくのばーくれーこうないのけんきゅうぐるーぷ、Computer{sp}Sy")
    assert doc["wiki_dependency"].output.startswith("BSDライセンスは、 -> ひとつ")


WIKI_SIZES = {
    "wiki_reading": (1517, 100, 200), "wiki_ner": (881, 64, 113), "wiki_dependency": (1517, 100, 200),
    "wiki_pas": (1514, 100, 199), "wiki_coreference": (1515, 100, 200),
}
FIRST_TRAIN_INPUT = "インダクタンスは、コイルなどにおいて電流の変化が誘導起電力となって現れる性質である。"  # wiki00060003
WIKI_FIRST_OUTPUT_LINE = {
    "wiki_reading": "いんだくたんすは、こいるなどにおいてでんりゅうのへんかがゆうどうきでんりょくとなってあらわれるせいしつである。",
    "wiki_dependency": "インダクタンスは、 -> 性質である。",
    "wiki_pas": "変化 ガ：電流",
    "wiki_coreference": "インダクタンス 性質 誘導係数 誘導子 インダクタンス 目的",
}


@pytest.mark.slow  # the five wiki tasks from the whole corpus: ~25 s on 2 cores; one-document parses stay fast
@pytest.mark.parametrize("task", wiki.TASKS)
def test_wiki_splits_and_first_samples(task, wiki_built):
    data = _read(wiki_built, task)
    assert tuple(len(data[s]["samples"]) for s in SPLITS) == WIKI_SIZES[task]
    assert all(s["output"].strip() for split in data.values() for s in split["samples"])  # empty answers dropped
    first = data["train"]["samples"][0]
    if task == "wiki_ner":  # wiki00060003 has no named entity, so NER's first document is another one
        assert first["output"].endswith("）") and "（" in first["output"]
    else:
        assert first["input"].startswith(FIRST_TRAIN_INPUT)
        assert first["output"].startswith(WIKI_FIRST_OUTPUT_LINE[task])
    assert data["test"]["output_length"] == get_task(task).output_length


@pytest.mark.slow
def test_wiki_ner_answer_is_one_line(wiki_built):
    data = _read(wiki_built, "wiki_ner")
    assert not any("\n" in s["output"] for split in data.values() for s in split["samples"])
    types = {item.rsplit("（", 1)[1] for split in data.values() for s in split["samples"] for item in s["output"].split(" ")
             if "（" in item and item.endswith("）")}
    assert types <= {"組織名）", "人名）", "地名）", "固有物名）", "日付表現）", "時刻表現）", "金額表現）", "割合表現）"}


@pytest.mark.slow
def test_wiki_rebuild_is_byte_identical_and_fresh_parse_agrees(raw_dir, wiki_built, tmp_path):
    again = tmp_path / "again"
    preprocess([get_task(t) for t in wiki.TASKS], again, raw_dir=raw_dir)
    for task in wiki.TASKS:
        for split in SPLITS:
            rel = Path("1.4.1/evaluation") / split / f"{task}.json"
            assert (wiki_built / rel).read_bytes() == (again / rel).read_bytes()
    # the second build came from the in-memory cache: parse the dev documents afresh, serially
    raw = RawFiles({wiki.KNP_DIR: raw_dir / wiki.KNP_DIR, wiki.id_path("dev"): raw_dir / wiki.id_path("dev")})
    paths = wiki.split_documents(raw, "dev")
    fresh = [wiki.doc_samples(p)["wiki_pas"] for p in paths]
    cached = _read(wiki_built, "wiki_pas")["dev"]["samples"]
    assert [s.to_json() for s in fresh if s.output.strip()] == cached


def _copy_doc(raw_dir: Path, tmp_path: Path, doc_id: str) -> Path:
    dst = tmp_path / doc_id[:8] / f"{doc_id}.knp"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(raw_dir / wiki.KNP_DIR / doc_id[:8] / f"{doc_id}.knp", dst)
    return dst


def test_corrupt_knp_names_file_and_line(raw_dir, tmp_path):
    path = _copy_doc(raw_dir, tmp_path, "wiki00280639")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:5] + ["this is not a KNP line\n"] + lines[5:]), encoding="utf-8")
    with pytest.raises(MalformedDataError) as e:
        wiki.doc_samples(path)
    assert f"{path}, line 6" in str(e.value) and "KNP" in str(e.value)


def test_truncated_knp_names_the_last_line(raw_dir, tmp_path):
    path = _copy_doc(raw_dir, tmp_path, "wiki00280639")
    path.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:10]), encoding="utf-8")
    with pytest.raises(MalformedDataError) as e:
        wiki.doc_samples(path)
    assert f"{path}, line 10" in str(e.value) and "EOS" in str(e.value)


def test_corrupt_knp_in_parallel_build_is_reported(raw_dir, tmp_path):
    """Errors raised in worker processes reach the caller as the same MalformedDataError."""
    knp = tmp_path / "knp"
    ids = sorted((raw_dir / wiki.id_path("dev")).read_text().split())[:70]
    for doc_id in ids:
        _copy_doc(raw_dir, knp, doc_id)
    bad = knp / ids[40][:8] / f"{ids[40]}.knp"
    bad.write_text(bad.read_text(encoding="utf-8").replace("EOS\n", "EOS\n* garbage\n", 1), encoding="utf-8")
    (tmp_path / "dev.id").write_text("\n".join(ids) + "\n")
    raw = RawFiles({wiki.KNP_DIR: knp, wiki.id_path("dev"): tmp_path / "dev.id"})
    with pytest.raises(MalformedDataError) as e:
        wiki.corpus_samples(wiki.split_documents(raw, "dev"), workers=2)
    assert str(bad) in str(e.value) and "line" in str(e.value)


def test_id_without_knp_file_names_the_id_file(raw_dir, tmp_path):
    (tmp_path / "test.id").write_text("wiki00280639\nwiki99999999\n")
    raw = RawFiles({wiki.KNP_DIR: raw_dir / wiki.KNP_DIR, wiki.id_path("test"): tmp_path / "test.id"})
    with pytest.raises(MalformedDataError) as e:
        wiki.split_documents(raw, "test")
    assert f"{tmp_path / 'test.id'}, line 2" in str(e.value) and "wiki99999999" in str(e.value)


# --- ALT and WikiCorpus (made-up fixtures in the upstream raw formats) -------------------------------------

def _build_mt(task: str, fixture: str, out: Path) -> dict[str, dict]:
    report = preprocess([get_task(task)], out, raw_dir=FIXTURES / fixture)
    assert report.results[0].status == "built", report.results[0]
    return _read(out, task)


def test_alt_both_directions(tmp_path):
    e2j = _build_mt("alt-e-to-j", "madeup_alt", tmp_path / "e2j")
    j2e = _build_mt("alt-j-to-e", "madeup_alt", tmp_path / "j2e")
    # official article lists, in list order, sentences in corpus order, no shuffle; the 621-character
    # pair and the sentence without English are left out
    assert [s["output"] for s in e2j["train"]["samples"]] == [
        "市は新しい図書館の建設を発表した。", "開館は来年の春を予定している。", "猫が窓辺で昼寝をしていた。",
        "隣の犬がそれを見て吠えた。", "短い文です。"]
    assert e2j["train"]["samples"][0]["input"] == "The city announced the construction of a new library."
    assert [len(e2j[s]["samples"]) for s in SPLITS] == [5, 1, 2]
    for split in SPLITS:
        assert [(s["output"], s["input"]) for s in j2e[split]["samples"]] == \
               [(s["input"], s["output"]) for s in e2j[split]["samples"]]
    assert e2j["test"]["metrics"] == ["bleu_ja", "bert_score_ja_f1", "comet_wmt22"]
    assert j2e["test"]["output_length"] == 500 and e2j["test"]["output_length"] == 250


def test_wikicorpus_split_and_filter(tmp_path):
    e2j = _build_mt("wikicorpus-e-to-j", "madeup_wikicorpus", tmp_path / "e2j")
    j2e = _build_mt("wikicorpus-j-to-e", "madeup_wikicorpus", tmp_path / "j2e")
    # 10 files -> 8/1/1 files after the seed-42 shuffle of the path-sorted list; 12 pairs kept of 14
    assert [len(j2e[s]["samples"]) for s in SPLITS] == [9, 2, 1]
    assert j2e["test"]["samples"] == [{"input": "短い。", "output": "Short."}]
    everything = [s for split in j2e.values() for s in split["samples"]]
    assert {"input": "平家物語は軍記物語である。", "output": "The Tale of the Heike is a war tale & epic."} in everything
    assert all(len(s["input"]) + len(s["output"]) < 500 for s in everything)
    assert not any(s["input"] == "確認訳のない文。" for s in everything)  # no <e type="check">
    assert [(s["output"], s["input"]) for s in e2j["train"]["samples"]] == \
           [(s["input"], s["output"]) for s in j2e["train"]["samples"]]


def test_wikicorpus_order_does_not_depend_on_the_file_system(tmp_path):
    """Files created in reverse order (a different directory order on most file systems) give the same split."""
    src = FIXTURES / "madeup_wikicorpus"
    files = sorted(p for p in src.rglob("*.xml"))
    for p in reversed(files):
        dst = tmp_path / "raw" / p.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dst)
    spec = get_task("wikicorpus-j-to-e")
    a = mt.wikicorpus(spec, RawFiles({mt.WIKICORPUS_DIR: src / mt.WIKICORPUS_DIR}), SPLITS)
    b = mt.wikicorpus(spec, RawFiles({mt.WIKICORPUS_DIR: tmp_path / "raw" / mt.WIKICORPUS_DIR}), SPLITS)
    assert a == b


def test_wikicorpus_corrupt_xml_names_file_and_line(tmp_path):
    src = FIXTURES / "madeup_wikicorpus" / mt.WIKICORPUS_DIR
    dst = tmp_path / "wc"
    shutil.copytree(src, dst)
    bad = dst / "LTT" / "LTT00002.xml"
    bad.write_text(bad.read_text(encoding="utf-8").replace("</sen>", "</sentence>", 1), encoding="utf-8")
    with pytest.raises(MalformedDataError) as e:
        mt.wikicorpus(get_task("wikicorpus-e-to-j"), RawFiles({mt.WIKICORPUS_DIR: dst}), SPLITS)
    assert f"{bad}, line 15" in str(e.value)


def test_alt_bad_line_and_bad_direction(tmp_path):
    src = FIXTURES / "madeup_alt" / "alt"
    shutil.copytree(src, tmp_path / "alt")
    ja = tmp_path / mt.ALT_DIR / "data_ja.txt"
    ja.write_text(ja.read_text(encoding="utf-8") + "no tab on this line\n", encoding="utf-8")
    raw = RawFiles({mt.ALT_DIR: tmp_path / mt.ALT_DIR,
                    **{mt.alt_url_path(s): tmp_path / mt.alt_url_path(s) for s in SPLITS}})
    with pytest.raises(MalformedDataError) as e:
        mt.alt(get_task("alt-e-to-j"), raw, SPLITS)
    assert f"{ja}, line 11" in str(e.value)
    import dataclasses

    spec = dataclasses.replace(get_task("alt-e-to-j"), options={"direction": "e2j"})
    with pytest.raises(TaskSpecError):
        mt.alt(spec, raw, SPLITS)
