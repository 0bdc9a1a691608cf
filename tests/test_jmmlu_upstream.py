"""JMMLU's splits and prompts are upstream's, sample for sample.

How this is established: the test below re-implements llm-jp-eval's own JMMLU preprocessor (datasets/jmmlu.py of
llm-jp-eval v1.3.0, as vendored in swallow-llm/swallow-evaluation, llm-jp-eval/) and its default prompt
(utils.get_evaluation_prompt: the Alpaca-JA text, few-shots as "### 入力/### 応答" pairs, formatted as a langchain
PromptTemplate, i.e. str.format) from upstream's code, not from jleval's, and runs it on the real JMMLU files.
The subject list is typed here from upstream's FILENAMES, independently of tasks/jmmlu.toml. Upstream's algorithm:
`random.seed(42)` once before the loop; per subject `random.shuffle(samples)` (the stream continues from subject to
subject), first len//2 to dev, rest to test; `random.shuffle(dev)`, `random.shuffle(test)` (stream continuing);
train = dev[:16] + test[:16], dev = dev[16:], test = test[16:]. The v1.4.1 spec (jaster-spec.md) describes the
same halving and pools; only the code fixes where the seed is set (once, not before each shuffle).
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from jleval.jaster.preprocess import preprocess
from jleval.run import RunOptions, plan_tasks
from jleval.tasks import get_task

UPSTREAM_FILENAMES = """
econometrics human_aging high_school_psychology professional_medicine electrical_engineering college_mathematics
medical_genetics formal_logic nutrition prehistory world_religions japanese_history high_school_geography
international_law logical_fallacies human_sexuality philosophy college_medicine professional_accounting
high_school_mathematics global_facts business_ethics high_school_chemistry college_physics high_school_statistics
moral_disputes high_school_biology miscellaneous high_school_macroeconomics high_school_computer_science
abstract_algebra elementary_mathematics jurisprudence security_studies high_school_physics college_computer_science
public_relations management computer_security college_chemistry anatomy high_school_european_history
machine_learning virology high_school_microeconomics astronomy world_history college_biology clinical_knowledge
conceptual_physics professional_psychology sociology marketing
""".split()

ALPACA_JA = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。"


def upstream_splits(jmmlu_dir: Path) -> dict[str, list[dict[str, str]]]:
    dev_samples: list[dict[str, str]] = []
    test_samples: list[dict[str, str]] = []
    state = random.getstate()
    random.seed(42)
    for filename in UPSTREAM_FILENAMES:
        with (jmmlu_dir / f"{filename}.csv").open(encoding="utf-8-sig") as f:
            samples = [{"input": f"質問：{row[0]}\n選択肢：A.{row[1]},B.{row[2]},C.{row[3]},D.{row[4]}",
                        "output": row[5]} for row in csv.reader(f, quoting=csv.QUOTE_ALL)]
        random.shuffle(samples)
        dev_samples.extend(samples[: len(samples) // 2])
        test_samples.extend(samples[len(samples) // 2:])
    random.shuffle(dev_samples)
    random.shuffle(test_samples)
    random.setstate(state)
    return {"train": dev_samples[:16] + test_samples[:16], "dev": dev_samples[16:], "test": test_samples[16:]}


def upstream_prompt(instruction: str, few_shots: list[dict[str, str]], input_text: str) -> str:
    template = f"{ALPACA_JA}\n\n### 指示:\n{instruction}"
    for shot in few_shots:
        template += f"\n\n### 入力:\n{shot['input']}\n\n### 応答:\n{shot['output']}"
    template += "\n\n### 入力:\n{input}\n\n### 応答:\n"
    return template.format(input=input_text)


@pytest.fixture(scope="module")
def built(raw_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("jmmlu")
    preprocess([get_task("jmmlu")], out, raw_dir=raw_dir, allow_download=False)
    return out, upstream_splits(raw_dir / "jmmlu" / "JMMLU")


def test_subject_order_in_task_file_is_upstreams():
    assert get_task("jmmlu").options["subjects"] == UPSTREAM_FILENAMES
    assert len(UPSTREAM_FILENAMES) == len(set(UPSTREAM_FILENAMES)) == 53


def test_three_splits_equal_upstreams_sample_for_sample(built):
    import json

    out, upstream = built
    for split in ("train", "dev", "test"):
        data = json.loads((out / "1.4.1" / "evaluation" / split / "jmmlu.json").read_text(encoding="utf-8"))
        ours = [{"input": s["input"], "output": s["output"]} for s in data["samples"]]
        assert len(ours) == len(upstream[split])
        mismatches = [i for i, (a, b) in enumerate(zip(ours, upstream[split])) if a != b]
        assert mismatches == [], f"{split}: {len(mismatches)} samples differ, first at index {mismatches[:1]}"
    # sizes reasoned out: 7,097 rows; each subject halves with the odd item to test (3,540 + 3,557 across the
    # 53 subjects), and 16 of each pool go to train
    assert (len(upstream["dev"]) + 16, len(upstream["test"]) + 16) == (3540, 3557)


@pytest.mark.parametrize("shots", [4, 0])
@pytest.mark.parametrize("split", ["dev", "test"])
def test_prompts_equal_upstreams(built, split, shots):
    out, upstream = built
    spec = get_task("jmmlu")
    opts = RunOptions(model="m", tasks=["jmmlu"], split=split, max_num_samples=-1, num_few_shots=shots,
                      data_dir=out)
    (plan,), skipped = plan_tasks(opts, [spec], out, "fp")
    assert skipped == {} and plan.few_shots == shots
    want = [upstream_prompt(spec.instruction, upstream["train"][:shots], s["input"]) for s in upstream[split]]
    got = [r.prompt for r in plan.requests]
    assert len(got) == len(want)
    assert got == want


def test_a_task_file_without_the_subject_list_is_named():
    import dataclasses

    from jleval.errors import TaskSpecError
    from jleval.jaster import mmlu
    from jleval.jaster.base import RawFiles

    spec = dataclasses.replace(get_task("jmmlu"), options={"subjects": ["anatomy", "anatomy"]})
    with pytest.raises(TaskSpecError) as e:
        mmlu.jmmlu(spec, RawFiles({}), ("test",))
    assert "jmmlu.toml: options.subjects" in e.value.message
