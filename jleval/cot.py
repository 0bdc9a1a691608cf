"""Chain-of-thought prompt style: per-task prompts with written rationales, and answer extraction.

`jleval run --prompt-style cot` renders each task with the normal template (v1.4.1 Alpaca-JA layout by
default) but with the instruction, few-shots and output budget of `prompts/cot/<task>.toml`: the model is asked
to reason step by step and to end with a line `答え：<answer>` (`Answer: <answer>` for mmlu_en). Scoring calls
`extract_answer` on the raw generation before the task's normal post-processing and metrics; `None` means no
answer could be extracted and is counted per task, never scored as if it were an answer.

Extraction rules (docs/cot.md has the reasoning and examples):

1. Anything from a new prompt block on (a line starting `### 入力:` or `### 指示:`) is dropped: that is the
   model inventing the next example. (`### 応答:` alone is not a cut: chat models sometimes echo it first.)
2. Marker: the LAST occurrence of `答え` / `回答` / `Answer` followed by a colon (`:` or `：`, markdown bold
   allowed around either) wins; the answer is the rest of that line, cleaned. If that rest is empty (the
   answer is on its own line, e.g. `**答え：**` then `entailment`), the next non-empty line is the answer.
   A line that is only the marker word (`## 答え`, `**Answer**`) works the same way.
3. Fallbacks, only when no marker is found:
   a. the last non-empty line, cleaned, if it is a valid answer by itself (one of the task's labels; a number
      for math tasks);
   b. the last `答えは X です` / `the answer is X` phrase, if X is a valid answer (a label, a number, or for
      free-text tasks a short phrase without sentence punctuation).
   Otherwise `None`.

Cleaning = strip whitespace, markdown emphasis (`**`, `__`, backticks), one pair of surrounding quotes or
brackets (「」『』"" ''), and trailing sentence punctuation (。．.). `解答` is deliberately not a marker: the
MAWPS source rationales start with `解答：` before the reasoning.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from jleval._toml import tomllib
from jleval.errors import TaskSpecError, UsageError
from jleval.fsutil import sha256_text
from jleval.resources import prompts_dir
from jleval.tasks import TaskSpec, get_task, refuse_first
from jleval.types import GenParams

#: The tasks that have a chain-of-thought prompt in prompts/cot/ (tests check this matches the files).
COT_TASKS: tuple[str, ...] = (
    "jamp", "janli", "jnli", "jsem", "jsick",  # NLI
    "jemhopqa",  # QA
    "commonsensemoralja", "jcommonsenseqa", "kuci",  # MC
    "mawps", "mgsm",  # MR
    "jmmlu", "mmlu_en",  # HE
)

#: Stop strings for CoT generations: the start of a new prompt block. A bare blank line does NOT stop a CoT
#: answer (the reasoning may contain one); `extract_answer` also cuts at these if a backend ignored them.
COT_STOP: tuple[str, ...] = ("\n### 入力:", "\n### 指示:")

#: What a shot's final line must start with (the answer marker the prompts teach).
SHOT_MARKERS = ("答え：", "Answer: ")

#: Where a shot's answer comes from, as declared in the file's `shots_origin`.
SHOT_ORIGINS = ("train", "invented")

_REQUIRED = {"task": str, "instruction": str, "output_length": int, "source_note": str, "shots_origin": str,
             "shots": list}
_SHOT_KEYS = {"input": str, "output": str}


@dataclass(frozen=True)
class CotPrompt:
    """One task's CoT prompt. `shots` are `{"input", "output"}` dicts like jaster samples; each output is the
    rationale lines, then a final line `答え：<gold>` (`Answer: <gold>` for English tasks)."""

    task: str
    instruction: str
    shots: list[dict]
    output_length: int
    source_note: str
    shots_origin: str = "train"  # "train": the first train samples (as the basic prompt); "invented"
    sha256: str = ""  # of the file text: record it beside the template hash
    file: Path | None = field(default=None, compare=False)

    @property
    def answers(self) -> list[str]:
        """The gold answer of each shot (the text after the marker on its final line)."""
        return [_shot_answer(s["output"]) for s in self.shots]


def _shot_answer(output: str) -> str:
    last = output.rsplit("\n", 1)[-1]
    for marker in SHOT_MARKERS:
        if last.startswith(marker):
            return last[len(marker):]
    return ""


def cot_dir() -> Path:
    return prompts_dir() / "cot"


def load_cot(task: str) -> CotPrompt:
    """Read and check `prompts/cot/<task>.toml`. A task without one is a UsageError naming those that have one."""
    path = cot_dir() / f"{task}.toml"
    if task not in COT_TASKS or not path.is_file():
        raise UsageError(f"task {task!r} has no chain-of-thought prompt",
                         f"tasks with one: {', '.join(COT_TASKS)}; run it with --prompt-style basic, or add "
                         f"prompts/cot/{task}.toml (see docs/cot.md)")
    return parse_cot(path)


@dataclass(frozen=True)
class CotPlan:
    """What a run needs to prompt one task with chain of thought: the task with the CoT instruction, the written
    few-shots, the decoding (CoT output length; stop at the next prompt block) and the prompt file's sha256."""

    spec: TaskSpec
    shots: list[dict]
    gen: GenParams
    sha256: str


def plan_task(spec: TaskSpec, num_few_shots: int) -> CotPlan:
    """The chain-of-thought prompt parts of `spec` for `num_few_shots` shots (the task's own count when it fixes
    one). Fewer written examples than asked is a UsageError."""
    import dataclasses

    c = load_cot(spec.name)
    n = spec.few_shots(num_few_shots)
    if n > len(c.shots):
        raise UsageError(f"{spec.name}: its chain-of-thought prompt has {len(c.shots)} written examples, "
                         f"fewer than the {num_few_shots} few-shots asked",
                         f"pass --num-few-shots {len(c.shots)} or fewer with --prompt-style cot")
    return CotPlan(dataclasses.replace(spec, instruction=c.instruction), c.shots[:n],
                   GenParams(max_tokens=c.output_length, stop=tuple(COT_STOP)), c.sha256)


def parse_cot(path: Path) -> CotPrompt:
    """Parse one CoT file. The schema is closed: unknown, missing or mistyped keys are errors naming the key."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TaskSpecError(f"{path}: not valid TOML: {e}") from None
    _check_keys(str(path), data, _REQUIRED)
    refuse_first([
        (data["task"] != path.stem, f"{path}: task {data['task']!r} differs from the file name {path.stem!r}", None),
        (data["output_length"] <= 0, f"{path}: output_length must be positive", None),
        (data["shots_origin"] not in SHOT_ORIGINS, f"{path}: shots_origin must be one of {', '.join(SHOT_ORIGINS)}",
         None),
        (not data["instruction"].strip(), f"{path}: the instruction is empty", None),
        (not data["shots"], f"{path}: no [[shots]]", "add at least one shot (four, like the basic prompt)"),
    ])
    shots = [_shot(f"{path}: shots[{i}]", shot) for i, shot in enumerate(data["shots"])]
    return CotPrompt(task=data["task"], instruction=data["instruction"], shots=shots,
                     output_length=data["output_length"], source_note=data["source_note"],
                     shots_origin=data["shots_origin"], sha256=sha256_text(text)[:16], file=path)


def _shot(where: str, shot: object) -> dict:
    """One [[shots]] entry, checked: an input, and an output of rationale lines ending with the answer line."""
    if not isinstance(shot, dict):
        raise TaskSpecError(f"{where} must be a table with input and output")
    _check_keys(where, shot, _SHOT_KEYS)
    output = shot["output"]
    refuse_first([
        ("\n\n" in output or output != output.strip(),
         f"{where}: the output has a blank line or surrounding whitespace",
         "write the rationale as consecutive lines, then the answer line"),
        (not _shot_answer(output), f"{where}: the output's last line must be '答え：<answer>' (or 'Answer: <answer>')",
         None),
        ("\n" not in output, f"{where}: the output has no rationale before the answer line", None),
    ])
    return {"input": shot["input"], "output": output}


def _check_keys(where: str, data: dict, keys: dict) -> None:
    for key in data:
        if key not in keys:
            raise TaskSpecError(f"{where}: unknown key {key!r}", f"use only these keys: {', '.join(keys)}")
    for key, typ in keys.items():
        if key not in data:
            raise TaskSpecError(f"{where}: missing required key {key!r}", "see docs/cot.md for the file format")
        value = data[key]
        if type(value) is not typ:  # TOML values are plain builtins (and a boolean is no integer here)
            raise TaskSpecError(f"{where}: {key!r} must be a {typ.__name__}, got {type(value).__name__}")


# --- answer extraction ------------------------------------------------------------------------------------

#: Bumped whenever a change to the rules below can change an extracted answer; recorded in metric signatures.
EXTRACTION_VERSION = "2"

_BLOCK = re.compile(r"^[ \t]*###[ \t]*(?:入力|指示)[ \t]*[:：]", re.MULTILINE)
_EMPH = r"(?:\*\*|__|\*|_)?"
# A marker word, optional closing emphasis, then a colon (half- or full-width), optional emphasis again.
_MARKER = re.compile(rf"(?:答え|回答|\b[Aa]nswer\b|\bANSWER\b){_EMPH}[ \t]*[:：]{_EMPH}")
# A line that is only a marker word, as a heading or in bold: "## 答え", "**Answer**".
_MARKER_LINE = re.compile(rf"^[ \t>#*_-]*(?:最終的な)?(?:答え|回答|(?:[Ff]inal )?[Aa]nswer){_EMPH}[ \t]*$")
_PHRASE = re.compile(r"答えは[ \t]*(.+?)[ \t]*(?:です|だ|となります|になります)|"
                     r"\b[Tt]he (?:final |correct )?answer is[ \t]*(.+?)[ \t]*(?:\.(?:\s|$)|$)", re.MULTILINE)
_NUMBER = re.compile(r"^[-−]?\d+(?:[.,]\d+)*$")
_QUOTES = (("「", "」"), ("『", "』"), ('"', '"'), ("'", "'"), ("“", "”"), ("（", "）"), ("(", ")"), ("【", "】"))


@dataclass(frozen=True)
class Extraction:
    """What `extract` found: the answer (None = nothing extracted) and the rule that produced it."""

    answer: str | None
    rule: str  # "marker" | "last-line" | "phrase" | "none"


class LabelledTask(Protocol):
    """What answer extraction reads of a task: a TaskSpec, or scoring's TaskInfo for a task only a run's
    manifest defines."""

    @property
    def label_list(self) -> tuple[str, ...]: ...

    @property
    def category(self) -> str | None: ...


def _answer_kind(task: LabelledTask | str | None) -> tuple[str, tuple[str, ...]]:
    """("label", labels) for tasks with a label list, ("number", ()) for math (MR) tasks, else ("text", ()).
    `task` is a task name or anything with `label_list` and `category` (a TaskSpec, or scoring's TaskInfo
    for a task that only the run's manifest defines)."""
    if task is None:
        return "text", ()
    if isinstance(task, str):
        task = get_task(task)
    if task.label_list:
        return "label", tuple(task.label_list)
    if task.category == "MR":
        return "number", ()
    return "text", ()


def clean(text: str) -> str:
    """Strip whitespace, markdown emphasis, one pair of surrounding quotes/brackets and a final 。/．/."""
    s = text.strip()
    for _ in range(3):  # nested decorations like **「B」** or `**B**`.
        before = s
        s = s.strip().strip("*_`").strip()
        for left, right in _QUOTES:
            if len(s) >= 2 and s.startswith(left) and s.endswith(right):
                s = s[len(left):-len(right)].strip()
        s = s.rstrip("。．").strip()
        if s.endswith(".") and not s.endswith(".."):
            s = s[:-1].rstrip()
        if s == before:
            break
    return s


def _valid(answer: str, kind: str, labels: tuple[str, ...]) -> bool:
    if not answer:
        return False
    if kind == "label":
        return answer in labels
    if kind == "number":
        return bool(_NUMBER.match(answer))
    return len(answer) <= 40 and not re.search(r"[、。，,]", answer)


def _first_answer(lines: Iterable[str]) -> str:
    """The first of `lines` that is not empty once cleaned, cleaned ("" if none)."""
    return next((clean(line) for line in lines if clean(line)), "")


def _after_last_marker(lines: list[str]) -> str | None:
    """The answer after the last answer marker (on its line, or on the next non-empty line), or None."""
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        found = list(_MARKER.finditer(line))
        if found:
            rest = clean(line[found[-1].end():])
        elif _MARKER_LINE.match(line):
            rest = ""
        else:
            continue
        rest = rest or _first_answer(lines[i + 1:])  # else the answer sits on the next non-empty line
        if rest:
            return rest
    return None


def _last_phrase(text: str) -> str:
    """X of the last "答えは X です" / "the answer is X" phrase, cleaned ("" if none)."""
    phrases = list(_PHRASE.finditer(text))
    if not phrases:
        return ""
    m = phrases[-1]
    return clean((m.group(1) or m.group(2) or "").lstrip("、，,:： \t"))


def extract(text: str, task: LabelledTask | str | None = None) -> Extraction:
    """Extract the final answer of a CoT generation (see the module docstring for the rules)."""
    if not text:
        return Extraction(None, "none")
    # NFKC first (every profile applies it to the answer anyway): full-width markers, colons and spaces
    # ("Ａｎｓｗｅｒ：", "答え　：") then match like their ASCII forms. Then everything from a new prompt block on
    # is dropped.
    text = _BLOCK.split(unicodedata.normalize("NFKC", text), maxsplit=1)[0]
    lines = text.splitlines()
    kind, labels = _answer_kind(task)

    # 1. The last marker wins (scan lines from the end; within a line, the last marker).
    marked = _after_last_marker(lines)
    if marked:
        return Extraction(marked, "marker")

    # 2. Fallbacks, in order, when the answer they give is valid: (a) the last non-empty line, if it is a complete
    # answer by itself (not for free text: any line would do); (b) the last "答えは X です" / "the answer is X".
    fallbacks = (("last-line", _first_answer(reversed(lines)) if kind != "text" else ""),
                 ("phrase", _last_phrase(text)))
    for rule, answer in fallbacks:
        if _valid(answer, kind, labels):
            return Extraction(answer, rule)
    return Extraction(None, "none")


def extract_answer(text: str, task: LabelledTask | str | None = None) -> str | None:
    """The final answer of a CoT generation, or None when no answer could be extracted (report it as such)."""
    return extract(text, task).answer
