"""Chain-of-thought prompts (prompts/cot/*.toml) and answer extraction (jleval.cot).

Golden files: tests/golden/cot/<task>.txt hold the rendered CoT prompt (v1.4.1 layout, 4 shots) of a fixed
input. They are fixed files, reviewed by hand (tests/golden/README.md): the test only compares and never writes
them. After an intended change to a CoT prompt, edit the golden file by hand (or paste the new rendering after
reading it) and review the diff in the commit.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from jleval import cot
from jleval.errors import TaskSpecError, UnknownTaskError, UsageError
from jleval.prompts import load_template, render
from jleval.tasks import get_task

GOLDEN = Path(__file__).resolve().parent / "golden" / "cot"


def spec_or_none(name):
    try:
        return get_task(name)
    except UnknownTaskError:
        return None


# --- the prompt files ---------------------------------------------------------------------------------------

def test_cot_tasks_are_exactly_the_files():
    assert sorted(p.stem for p in cot.cot_dir().glob("*.toml")) == sorted(cot.COT_TASKS)
    required = {"jamp", "janli", "jnli", "jsem", "jsick", "jcommonsenseqa", "commonsensemoralja", "kuci",
                "jmmlu", "mmlu_en", "mawps", "mgsm", "jemhopqa"}
    assert required <= set(cot.COT_TASKS)


@pytest.mark.parametrize("name", cot.COT_TASKS)
def test_every_cot_file_loads_and_its_shots_are_consistent(name):
    c = cot.load_cot(name)
    assert c.task == name and len(c.shots) == 4 and 256 <= c.output_length <= 1024
    assert c.source_note.strip() and len(c.sha256) == 16
    english = name == "mmlu_en"
    marker = "Answer: " if english else "答え："
    assert marker in c.instruction  # the instruction teaches the final-line format the shots show
    spec = spec_or_none(name)
    for shot, answer in zip(c.shots, c.answers):
        lines = shot["output"].split("\n")
        assert len(lines) >= 2 and all(line.strip() for line in lines)  # rationale lines, no blank line
        assert lines[-1] == marker + answer
        assert not any(stop in shot["output"] or stop in shot["input"] for stop in cot.COT_STOP)
        # Extraction recovers each shot's gold answer, with and without the task's knowledge.
        assert cot.extract_answer(shot["output"], spec) == answer
        assert cot.extract_answer(shot["output"]) == answer
        if spec is not None and spec.label_list:
            assert answer in spec.label_list
        if spec is not None and spec.category == "MR":
            float(answer)
    if spec is not None:
        assert c.output_length > spec.output_length


def test_invented_shots_are_labelled_as_such():
    for name in cot.COT_TASKS:
        c = cot.load_cot(name)
        text = c.file.read_text(encoding="utf-8")
        if c.shots_origin == "invented":
            assert "INVENTED EXAMPLES" in text and "nvented" in c.source_note
        else:
            assert "first 4" in c.source_note
    assert {n for n in cot.COT_TASKS if cot.load_cot(n).shots_origin == "invented"} == {"jnli", "kuci", "mmlu_en"}


def test_task_without_cot_prompt_is_a_usage_error_naming_those_with_one():
    with pytest.raises(UsageError) as e:
        cot.load_cot("jsquad")
    assert "jsquad" in str(e.value) and "jamp" in str(e.value) and "mmlu_en" in str(e.value)


GOOD = '''task = "{task}"
output_length = 256
shots_origin = "train"
source_note = "test"
instruction = "考えてから答え：で答えてください。"
{extra}
[[shots]]
input = "前提：a\\n仮説：b"
output = "{output}"
'''


def write(tmp_path, task="jamp", output="理由。\\n答え：entailment", extra=""):
    path = tmp_path / f"{task}.toml"
    path.write_text(GOOD.format(task=task, output=output, extra=extra), encoding="utf-8")
    return path


def test_parse_accepts_a_minimal_file(tmp_path):
    c = cot.parse_cot(write(tmp_path))
    assert c.shots == [{"input": "前提：a\n仮説：b", "output": "理由。\n答え：entailment"}] and c.answers == ["entailment"]


@pytest.mark.parametrize("kwargs, needle", [
    ({"extra": 'labels = ["a"]'}, "unknown key 'labels'"),
    ({"extra": "[[shots]]\ninput = 'x'\noutput = '理由\\n答え：x'\ngold = 'x'"}, "unknown key 'gold'"),
    ({"output": "答え：entailment"}, "no rationale"),
    ({"output": "理由。\\n\\n答え：entailment"}, "blank line"),
    ({"output": "理由。\\nentailment"}, "last line must be"),
    ({"output": "理由。\\n答え："}, "last line must be"),
])
def test_parse_rejects_bad_files_naming_the_problem(tmp_path, kwargs, needle):
    with pytest.raises(TaskSpecError) as e:
        cot.parse_cot(write(tmp_path, **kwargs))
    assert needle in str(e.value)


def test_parse_rejects_missing_key_wrong_type_and_wrong_name(tmp_path):
    path = write(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace('source_note = "test"\n', ""), encoding="utf-8")
    with pytest.raises(TaskSpecError, match="missing required key 'source_note'"):
        cot.parse_cot(path)
    path = write(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace("output_length = 256", 'output_length = "256"'),
                    encoding="utf-8")
    with pytest.raises(TaskSpecError, match="'output_length' must be a int"):
        cot.parse_cot(path)
    with pytest.raises(TaskSpecError, match="differs from the file name"):
        cot.parse_cot(write(tmp_path, task="janli").rename(tmp_path / "jamp.toml"))


# --- rendering -------------------------------------------------------------------------------------------------

GOLDEN_INPUTS = {
    "jamp": "前提：ハナは3月から日記をつけている。現在、5月である。\n仮説：ハナは4月に日記をつけていた。",
    "jcommonsenseqa": "質問：雨の日に差すものは？\n選択肢：0.傘,1.靴,2.鍋,3.本,4.机",
    "jemhopqa": "質問：富士山と阿蘇山、標高が高いのはどちら？",
    "mawps": "問題：太郎は12個のアメを持っていて、5個を妹にあげました。太郎の手元には何個のアメが残っていますか？",
    "mmlu_en": "Qusetion: What is 7 times 8?\nChoices: A.54, B.56, C.58, D.64",
}


def render_cot(name: str, input_text: str) -> str:
    c = cot.load_cot(name)
    spec = dataclasses.replace(get_task(name), instruction=c.instruction)
    return render(load_template("v1.4.1"), spec, c.shots[:4], input_text)


@pytest.mark.parametrize("name", sorted(GOLDEN_INPUTS))
def test_rendered_cot_prompt_matches_golden_file(name):
    golden = (GOLDEN / f"{name}.txt").read_text(encoding="utf-8")
    # what a reviewer checked in the file, asserted on its own: the v1.4.1 layout, 4 shots each ending with the
    # final-answer line the extraction looks for, then the fixed input and an open response
    answer = "Answer: " if name == "mmlu_en" else "答え："
    assert golden.startswith("以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。")
    assert golden.count("### 入力:\n") == 5 and golden.count("### 応答:\n") == 5
    shots = [s.split("### 入力:")[0] for s in golden.split("### 応答:\n")[1:-1]]
    assert all(s.rstrip().splitlines()[-1].startswith(answer) for s in shots)
    assert golden.endswith(f"### 入力:\n{GOLDEN_INPUTS[name]}\n\n### 応答:\n")
    assert render_cot(name, GOLDEN_INPUTS[name]) == golden


def test_rendered_prompt_layout_and_stop_strings():
    prompt = render_cot("jamp", GOLDEN_INPUTS["jamp"])
    c = cot.load_cot("jamp")
    assert prompt.startswith("以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。")
    assert f"### 指示:\n{c.instruction}\n\n### 入力:\n{c.shots[0]['input']}\n\n### 応答:\n{c.shots[0]['output']}" in prompt
    assert prompt.endswith(f"### 入力:\n{GOLDEN_INPUTS['jamp']}\n\n### 応答:\n")
    # What follows each shot's answer is the start of the next block: exactly what COT_STOP catches when a
    # model continues the pattern, while the blank-line-free rationale never triggers it.
    after_first_shot = prompt.split(c.shots[0]["output"], 1)[1]
    assert after_first_shot.startswith("\n\n### 入力:\n") and "\n### 入力:" in cot.COT_STOP
    assert cot.extract_answer(c.shots[0]["output"] + after_first_shot, "jamp") == c.answers[0]
    assert all(s.startswith("\n###") for s in cot.COT_STOP) and "\n\n" not in cot.COT_STOP


# --- extraction on hand-written outputs ----------------------------------------------------------------------

@pytest.mark.parametrize("task, text, expected, rule", [
    # markers: Japanese full-width colon, ASCII colon, spaces, 回答, English
    ("jamp", "8月から10月まで続いている。\n9月はその間にある。\n答え：entailment", "entailment", "marker"),
    ("jamp", "理由。\n答え:neutral", "neutral", "marker"),
    ("jamp", "理由。\n答え ：  contradiction  ", "contradiction", "marker"),
    # full-width forms: ideographic space before the colon, full-width letters and answer
    ("jamp", "理由。\n答え　：entailment", "entailment", "marker"),
    ("mmlu_en", "So B.\nＡｎｓｗｅｒ：Ｂ", "B", "marker"),
    ("jcommonsenseqa", "牧草は餌になる。\n回答：3", "3", "marker"),
    ("mmlu_en", "Speed is distance over time.\nAnswer: B", "B", "marker"),
    ("mmlu_en", "So it is D.\nFinal answer: D", "D", "marker"),
    ("mmlu_en", "ANSWER: c", "c", "marker"),
    # several candidates: the last one wins, across lines and within a line
    ("jamp", "答え：neutral\nいや、9月は期間内なので導ける。\n答え：entailment", "entailment", "marker"),
    ("jmmlu", "答え：A、いや、答え：B", "B", "marker"),
    # chat-model styles: markdown bold, backticks, headings, answer on the next line, quotes, trailing 。
    ("jamp", "### 考え方\n1. 前提を読む\n2. 仮説と比べる\n\n**答え：** entailment", "entailment", "marker"),
    ("jmmlu", "**答え**：**B**", "B", "marker"),
    ("jcommonsenseqa", "答え：`3`", "3", "marker"),
    ("janli", "役割が入れ替わっている。\n\n## 答え\nnon-entailment", "non-entailment", "marker"),
    ("jamp", "理由。\n**答え：**\n\nentailment\n", "entailment", "marker"),
    ("jemhopqa", "1988年のほうが早い。\n答え：「ダイ・ハード」。", "ダイ・ハード", "marker"),
    ("mawps", "16 + 11 = 27 。27 + 99 = 126\n答え：126.", "126", "marker"),
    # the marker's answer is not judged here (that is the metric's job): wrong-format text is returned as is
    ("jamp", "答え：たぶんentailment", "たぶんentailment", "marker"),
    # a truncated final marker is skipped in favour of the previous candidate
    ("jamp", "答え：neutral\nもう一度考えると\n答え：", "neutral", "marker"),
    # a new "### 入力:" block is the model inventing the next example: ignored
    ("jamp", "導ける。\n答え：entailment\n\n### 入力:\n前提：x\n仮説：y\n\n### 応答:\n答え：neutral", "entailment",
     "marker"),
    ("jamp", "よく分からない。\n### 入力:\n前提：x\n答え：neutral", None, "none"),
    ("jamp", "### 応答:\n前提から導ける。\n答え：entailment", "entailment", "marker"),  # a chat model's echo
    # fallbacks: a last line that is a label / number by itself, and "答えは X です" / "the answer is X"
    ("jamp", "前提から仮説は導ける。\nentailment", "entailment", "last-line"),
    ("jamp", "前提から仮説は導ける。\n**Entailment**", None, "none"),
    ("mgsm", "5+6=11。\n11", "11", "last-line"),
    ("mawps", "佐藤は16個 16 + 11 = 27 。よって、答えは126です。", "126", "phrase"),
    ("mmlu_en", "The answer is C. It is the only metal.", "C", "phrase"),
    ("jemhopqa", "公開は1988年。よって答えはダイ・ハードです。", "ダイ・ハード", "phrase"),
    ("jamp", "答えは、前提から仮説は導けないということです。", None, "none"),
    # nothing to extract
    ("jamp", "前提と仮説を比べると、時間の関係が分かる。", None, "none"),
    ("jemhopqa", "ダイ・ハードは1988年公開。", None, "none"),
    ("mawps", "解答：16 + 11 = 27", None, "none"),  # 解答 starts a rationale, it is not a marker
    ("jamp", "", None, "none"),
])
def test_extract(task, text, expected, rule):
    spec = spec_or_none(task)
    got = cot.extract(text, spec)
    assert (got.answer, got.rule) == (expected, rule)
    assert cot.extract_answer(text, spec) == expected


def test_extract_accepts_a_task_name_or_nothing():
    assert cot.extract_answer("前提から導ける。\nentailment", "jamp") == "entailment"
    assert cot.extract_answer("前提から導ける。\nentailment") is None  # no task: no label list to trust
    assert cot.extract_answer("理由\n答え：entailment") == "entailment"
    with pytest.raises(UnknownTaskError):
        cot.extract_answer("答え：x", "no_such_task")


@pytest.mark.parametrize("raw, cleaned", [
    (" **B** ", "B"), ("「ダイ・ハード」。", "ダイ・ハード"), ("`3`", "3"), ("0.2.", "0.2"), ("(C)", "C"),
    ("U.S...", "U.S..."), ("entailment。", "entailment"),
])
def test_clean(raw, cleaned):
    assert cot.clean(raw) == cleaned


# --- the shots are the basic prompt's shots (needs the raw files) ---------------------------------------------

@pytest.fixture(scope="module")
def train_heads(raw_dir, tmp_path_factory):
    """The first 4 train samples of every task whose CoT shots come from its train split (built from raw)."""
    import json

    from jleval.jaster.preprocess import preprocess

    out = tmp_path_factory.mktemp("jaster-cot")
    names = [n for n in cot.COT_TASKS if cot.load_cot(n).shots_origin == "train" and spec_or_none(n)]
    preprocess([get_task(n) for n in names], out, raw_dir=raw_dir, allow_download=False)
    heads = {}
    for n in names:
        path = out / "1.4.1" / "evaluation" / "train" / f"{n}.json"
        if path.is_file():
            heads[n] = json.loads(path.read_text(encoding="utf-8"))["samples"][:4]
    return heads


@pytest.mark.parametrize("name", cot.COT_TASKS)
def test_train_shots_are_the_first_train_samples(train_heads, name):
    c = cot.load_cot(name)
    if c.shots_origin != "train":
        pytest.skip(f"{name}: invented examples (no train data here)")
    if name not in train_heads:
        pytest.skip(f"{name}: its train split cannot be built from the raw files here (or its task file is missing)")
    head = train_heads[name]
    assert [s["input"] for s in c.shots] == [s["input"] for s in head]
    assert c.answers == [s["output"] for s in head]
