"""Every default that more than one place states: the CLI's option defaults, the library's keyword defaults and
the files' fallbacks all read them from here, so that "1.4.1" is written once."""
from __future__ import annotations

#: The jaster dataset version folder (llm-jp-eval v1.4.1's splits).
DATA_VERSION = "1.4.1"
#: The prompt layout: upstream v1.4.1's Alpaca-JA template.
TEMPLATE = "v1.4.1"
#: The scoring profile that reproduces llm-jp-eval v1.4.1's numbers (leaderboard-comparable).
PROFILE = "llm-jp-eval-1.4.1"
#: The split the leaderboard evaluates.
SPLIT = "dev"
#: Few-shot examples per prompt (0-shot tasks stay 0).
NUM_FEW_SHOTS = 4
#: Samples per task (-1 = all), as upstream's default.
MAX_NUM_SAMPLES = 100
#: basic | cot
PROMPT_STYLE = "basic"
#: auto: vllm with a CUDA GPU, else hf.
BACKEND = "auto"
#: Bootstrap replicates for the 95 % intervals, and their seed.
BOOTSTRAP = 1000
SEED = 0
