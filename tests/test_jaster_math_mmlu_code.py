"""Converters for mawps, mgsm, jmmlu, mmlu_en, mbpp, jhumaneval and xlsum_ja.

Real raw files (the `raw_dir` fixture) for the sets available offline; the made-up fixtures (invented data in
the documented upstream raw format, see each fixture's README) for mbpp, xlsum_ja and mmlu_en."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from jleval.errors import MalformedDataError
from jleval.jaster import code, math, mmlu, xlsum
from jleval.jaster.base import RawFiles
from jleval.jaster.preprocess import preprocess
from jleval.tasks import TaskSpec, parse_task, resolve_tasks
from tests.conftest import FIXTURES, REPO


def spec(name: str) -> TaskSpec:
    return parse_task(REPO / "tasks" / f"{name}.toml")


def raw_files(task: TaskSpec, root: Path) -> RawFiles:
    return RawFiles({s.path: root / s.path for s in task.sources if (root / s.path).exists()})


def build(name: str, root: Path):
    task = spec(name)
    return task, raw_files(task, root)


def read_split(out: Path, split: str, task: str) -> dict:
    return json.loads((out / "1.4.1" / "evaluation" / split / f"{task}.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- MAWPS (real)

def test_mawps_splits_and_first_samples(raw_dir):
    task, raw = build("mawps", raw_dir)
    out = math.mawps(task, raw, task.splits)
    assert {k: len(v) for k, v in out.items()} == {"train": 16, "dev": 500, "test": 500}
    question = "問題：佐藤は16個の青い風船、鈴木は11個の青い風船、高橋は99個の青い風船を持っています。彼らは全部でいくつの青い風船を持っているのでしょう？"
    # train = zero-shot examples, then the worked examples, answers parsed from "答えは…です。", unshuffled
    assert (out["train"][0].input, out["train"][0].output) == (question, "126")
    assert (out["train"][8].input, out["train"][8].output) == (question, "126")
    assert [s.output for s in out["train"][:8]] == ["126", "0.2", "3", "45", "50", "28", "24", "12"]
    assert out["test"][0].input.startswith("問題：大山のバナナコレクション") and out["test"][0].output == "4"
    assert not any("解答" in s.input for split in out.values() for s in split)
    assert all(float(s.output) == float(s.output) for split in out.values() for s in split)  # all numbers


# ---------------------------------------------------------------- MGSM (real test; exemplars)

JA_EXEMPLAR_SOURCE = '''"""Prompts for mgsm (excerpt: two exemplars, in url-nlp's mgsm/exemplars.py layout)."""
EXEMPLAR_NUMBER_ANSWERS = [11, 29]

MGSM_EXEMPLARS = {
    "ja": {
        "1": {
            "q":
                "\\u554f\\u984c\\uff1a\\u30ed\\u30b8\\u30e3\\u30fc\\u306f5\\u500b\\u306e\\u30c6\\u30cb\\u30b9\\u30dc\\u30fc\\u30eb\\u304c\\u3042\\u308a\\u307e\\u3059\\u3002",
            "a": "\\u7b54\\u3048\\u306f11\\u3067\\u3059\\u3002"
        },
        "2": {"q": "\\u554f\\u984c\\uff1a9\\u53f0", "a": "29"},
    },
}
'''


def test_mgsm_test_split_and_missing_exemplars(raw_dir, tmp_path):
    task, raw = build("mgsm", raw_dir)
    assert task.splits == ("train", "test")
    out = math.mgsm(task, raw, ("test",))
    assert len(out["test"]) == 250
    assert out["test"][0].input.startswith("ジャネットのアヒルは1日に16個の卵") and out["test"][0].output == "18"
    assert all(s.output.isdigit() for s in out["test"])  # "2,125" -> "2125"
    assert "2125" in {s.output for s in out["test"]}
    # the exemplars are not among the raw files here: train is reported missing, test still builds
    report = preprocess([task], tmp_path / "out", raw_dir=raw_dir)
    (res,) = report.results
    assert res.status == "partial" and res.sizes == {"test": 250}
    assert "mgsm/mgsm/exemplars.py" in res.missing[0] and "train" in res.missing[0]


def test_mgsm_exemplars_read_as_literals(tmp_path):
    path = tmp_path / "exemplars.py"
    path.write_text(JA_EXEMPLAR_SOURCE, encoding="utf-8")
    samples = math._mgsm_exemplars(path)
    assert [(s.input, s.output) for s in samples] == [
        ("問題：ロジャーは5個のテニスボールがあります。", "11"), ("問題：9台", "29")]
    path.write_text("EXEMPLAR_NUMBER_ANSWERS = [1]\nMGSM_EXEMPLARS = {'ja': {}}\n", encoding="utf-8")
    with pytest.raises(MalformedDataError, match="exemplars.py"):
        math._mgsm_exemplars(path)


# ---------------------------------------------------------------- JMMLU (real)

def test_jmmlu_halving_and_train(raw_dir):
    task, raw = build("jmmlu", raw_dir)
    subjects = mmlu.jmmlu_subjects(task)
    assert {p.stem for p in raw.dir_files("jmmlu/JMMLU", "*.csv")} == set(subjects)
    assert len(subjects) == 53 and not {"japanese_civics", "japanese_idiom"} & set(subjects)
    assert subjects[:2] == ["econometrics", "human_aging"] and subjects[-2:] == ["sociology", "marketing"]
    out = mmlu.jmmlu(task, raw, task.splits)
    # sizes do not depend on the order: each subject gives len//2 to dev, the rest to test (3,540 / 3,557), 16 each
    # to train
    assert {k: len(v) for k, v in out.items()} == {"train": 32, "dev": 3524, "test": 3541}
    assert {s.output for split in out.values() for s in split} == set(task.label_list) == {"A", "B", "C", "D"}
    # the first samples as upstream's own preprocessor orders them (see tests/test_jmmlu_upstream.py, which
    # re-implements it): the first of the shuffled dev pool (train), and the 17th (dev)
    first = out["train"][0]
    assert first.input.startswith("質問：欧州連合（EU）は次のどの組織に取って代わったか？\n選択肢：A.北大西洋条約機構")
    assert first.output == "B"
    assert out["dev"][0].input.startswith("質問：ダイエット・ピルのブランド、ノー・ウェイト") and out["dev"][0].output == "A"
    inputs = [s.input for split in out.values() for s in split]
    assert len(inputs) == 7097


def test_jmmlu_malformed_row_names_file_and_line(tmp_path):
    root = tmp_path / "jmmlu" / "JMMLU"
    root.mkdir(parents=True)
    for subject in mmlu.jmmlu_subjects(spec("jmmlu")):
        (root / f"{subject}.csv").write_text('"問","a","b","c","d","A"\n', encoding="utf-8")
    (root / "nutrition.csv").write_text('"問1","a","b","c","d","B"\n"問2","a","b","c","A"\n', encoding="utf-8")
    task = spec("jmmlu")
    with pytest.raises(MalformedDataError) as e:
        mmlu.jmmlu(task, RawFiles({"jmmlu/JMMLU": root}), task.splits)
    assert "nutrition.csv, line 2" in e.value.message and "6 columns" in e.value.message


# ---------------------------------------------------------------- MMLU English (made-up fixture)

def test_mmlu_en_round_robin_and_typo():
    root = FIXTURES / "madeup_mmlu"
    task, raw = build("mmlu_en", root)
    out = mmlu.mmlu_en(task, raw, task.splits)
    assert {k: len(v) for k, v in out.items()} == {"train": 9, "dev": 9, "test": 18}
    subjects = ["astronomy", "made_up_law", "zoology_madeup"]
    # dev folder sizes 3/2/4: two full rounds over the sorted subjects, then the remainders in subject order
    order = [s.input.split("Made-up ")[1].split(" question")[0] for s in out["train"]]
    assert order == subjects * 2 + ["astronomy", "zoology_madeup", "zoology_madeup"]
    first = out["train"][0]
    assert first.input.startswith("Qusetion: Made-up astronomy question dev ")
    assert "\nChoices: A.a" in first.input and ", D.e" in first.input and "C.c, d" in first.input
    assert {s.output for split in out.values() for s in split} <= {"A", "B", "C", "D"}
    assert mmlu.round_robin([[1, 2, 3], [4], [5, 6]]) == [1, 4, 5, 2, 3, 6]


# ---------------------------------------------------------------- MBPP-ja (made-up fixture)

def test_mbpp_canonical_ranges_and_gold():
    task, raw = build("mbpp", FIXTURES / "madeup_mbpp")
    assert task.num_few_shots == 0
    out = code.mbpp(task, raw, task.splits)
    assert {k: len(v) for k, v in out.items()} == {"train": 5, "dev": 90, "test": 500}
    assert out["test"][0].input == ("xに11を足した値を返す関数を書きなさい。\n\n### テストケース:\n"
                                    "assert add_11(0) == 11\nassert add_11(1) == 12")
    assert out["test"][0].output == "['assert add_11(0) == 11', 'assert add_11(1) == 12']"
    assert out["train"][0].input.startswith("xに601を") and out["dev"][0].input.startswith("xに511を")
    assert ast.literal_eval(out["train"][0].output) == ["assert add_601(0) == 601", "assert add_601(1) == 602"]


def test_mbpp_malformed_line(tmp_path):
    path = tmp_path / "mbpp" / "mbpp_translation.jsonl"
    path.parent.mkdir()
    good = (FIXTURES / "madeup_mbpp" / "mbpp" / "mbpp_translation.jsonl").read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(good[:3] + ['{"text": "broken', *good[3:5]]) + "\n", encoding="utf-8")
    task = spec("mbpp")
    with pytest.raises(MalformedDataError, match=r"mbpp_translation.jsonl, line 4: not valid JSON"):
        code.mbpp(task, RawFiles({"mbpp/mbpp_translation.jsonl": path}), task.splits)


# ---------------------------------------------------------------- JHumanEval (real)

def test_jhumaneval_splits_and_tests_run(raw_dir):
    task, raw = build("jhumaneval", raw_dir)
    out = code.jhumaneval(task, raw, task.splits)
    assert {k: len(v) for k, v in out.items()} == {"train": 32, "dev": 66, "test": 66}
    first = out["train"][0]
    assert first.input.startswith("from typing import List\n\n\ndef has_close_elements(")
    assert "\n\n### テストケース:\ndef check(has_close_elements):\n" in first.input
    assert "METADATA" not in first.input
    assert ast.literal_eval(first.output)[0] == "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True"
    # every gold list, run statement by statement after the canonical solution, passes
    import gzip

    rows = [json.loads(line) for line in gzip.open(raw.path(code.JHUMANEVAL_FILE), "rt", encoding="utf-8")]
    samples = [s for split in ("train", "dev", "test") for s in out[split]]
    broken_prompts = []
    for row, sample in zip(rows, samples):
        try:
            solution = compile(row["prompt"] + row["canonical_solution"], row["task_id"], "exec")
        except SyntaxError:  # this release's prompt of one problem is itself broken (not our conversion)
            broken_prompts.append(row["task_id"])
            continue
        namespace: dict = {}
        exec(solution, namespace)  # the dataset's own reference solutions
        for statement in ast.literal_eval(sample.output):
            exec(statement, namespace)
    assert len(broken_prompts) <= 1, broken_prompts


# ---------------------------------------------------------------- XL-Sum (made-up fixture)

def test_xlsum_official_splits_length_filter_and_licence():
    task, raw = build("xlsum_ja", FIXTURES / "madeup_xlsum")
    assert task.commercial_use is False and task.num_few_shots == 0
    out = xlsum.xlsum_ja(task, raw, task.splits)
    assert {k: len(v) for k, v in out.items()} == {"train": 5, "dev": 2, "test": 2}
    assert all(len(s.input) <= xlsum.MAX_CHAR_LENGTH for split in out.values() for s in split)
    assert out["train"][0].output == "架空の要約 train 0。" and out["dev"][1].output == "架空の要約 val 2。"
    names = {t.name for t in resolve_tasks("all")}
    assert "xlsum_ja" not in names and "mgsm" in names
    assert "xlsum_ja" in {t.name for t in resolve_tasks("all", include_non_commercial=True)}


# ---------------------------------------------------------------- determinism (through preprocess)

def test_two_runs_are_byte_identical(raw_dir, tmp_path):
    tasks = [spec(n) for n in ("mawps", "mgsm", "jmmlu", "jhumaneval")]
    runs = []
    for name in ("a", "b"):
        report = preprocess(tasks, tmp_path / name, raw_dir=raw_dir)
        assert [r.status for r in report.results] == ["built", "partial", "built", "built"]
        root = tmp_path / name / "1.4.1"
        runs.append({p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.json"))})
    assert runs[0] == runs[1] and len(runs[0]) > 10
    assert read_split(tmp_path / "a", "train", "jmmlu")["label_list"] == ["A", "B", "C", "D"]
    assert read_split(tmp_path / "a", "test", "mawps")["output_length"] == 10


def test_fixture_tasks_build_through_preprocess(tmp_path):
    for fixture, name, sizes in (("madeup_mbpp", "mbpp", {"train": 5, "dev": 90, "test": 500}),
                                 ("madeup_xlsum", "xlsum_ja", {"train": 5, "dev": 2, "test": 2}),
                                 ("madeup_mmlu", "mmlu_en", {"train": 9, "dev": 9, "test": 18})):
        report = preprocess([spec(name)], tmp_path / name, raw_dir=FIXTURES / fixture)
        (res,) = report.results
        assert (res.status, res.sizes) == ("built", sizes), res.missing
        if name == "xlsum_ja":
            assert any("non-commercial" in w for w in res.warnings)
