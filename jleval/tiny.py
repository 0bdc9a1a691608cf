"""A tiny random-weight Llama with a locally trained tokenizer, for tests, benchmarks and `jleval demo`.

Nothing is downloaded: the byte-level BPE tokenizer is trained on the short Japanese + English text below (our
own sentences, written for this module), the weights are drawn from a seeded generator, and the result is
saved with `save_pretrained` into a folder that transformers (and vLLM) load like any Hub model. It takes about
a second, and the same seed gives byte-identical files, so a test can build it once per session.

The model is meaningless (random weights), but everything around it is real: a chat template, BOS/EOS/PAD
tokens, a generation config, Japanese text round-tripping through the tokenizer.
"""
from __future__ import annotations

import json
from pathlib import Path

from jleval.fsutil import atomic_write_json

# Bump when the recipe changes: a folder built by another recipe is rebuilt rather than reused.
RECIPE = "tiny-llama-v2"  # v2: one attention head of 64 dims (vLLM's CPU attention refuses head_dim 16)

CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# Training text for the tokenizer: sentences in the style of jaster prompts and answers, in both languages.
CORPUS = """\
以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。
### 指示:
質問に対する答えを出力してください。答えが数値の場合は、数値のみを出力してください。
### 入力:
質問：日本で一番高い山は何ですか？
### 応答:
富士山
前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。
前提：男性が公園で犬と散歩している。
仮説：男性が屋外にいる。
entailment
東京は日本の首都であり、人口が最も多い都市です。
京都には多くの寺院や神社があり、毎年たくさんの観光客が訪れます。
大阪の人々は食べ物が好きで、たこ焼きやお好み焼きが有名です。
彼は毎朝六時に起きて、駅まで歩いて会社に行きます。
この文章を英語に翻訳してください。
今日はとても暑いので、冷たい飲み物がほしいです。
私たちは来週の会議で新しい計画について話し合う予定です。
次の文の主語を答えなさい。猫が窓のそばで眠っている。
計算問題：リンゴが三つとミカンが五つあります。果物は全部でいくつですか？答えは8です。
カタカナ、ひらがな、漢字、そしてローマ字が日本語の文字です。
読解問題の答えは本文の中から抜き出してください。
The quick brown fox jumps over the lazy dog near the river bank.
Please answer the question with a single word or a number.
Tokyo is the capital of Japan and one of the largest cities in the world.
Machine translation systems convert sentences from one language to another.
The model reads the instruction, the few-shot examples, and then the input.
Evaluation scores are computed with exact match, character F1, and BLEU.
Question: What is 12 plus 30? Answer: 42
Premise: A woman is reading a book. Hypothesis: A person is reading. Label: entailment
0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 3.14
A B C D E yes no true false
"""

# The context in tokens: room for the longest jaster prompts (4 shots) plus their output length.
CONTEXT = 4096

SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = CORPUS.splitlines()
    # A few passes so that frequent Japanese words merge; the order is fixed, so training is deterministic.
    tok.train_from_iterator(lines * 3, trainer=trainer)
    # Llama's BOS policy: `add_special_tokens=True` prepends <s>, False gives the bare text's tokens.
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return tok


def build_tiny_model(out_dir: Path | str, *, seed: int = 0, vocab_size: int = 1024, hidden_size: int = 64,
                     num_layers: int = 2, head_dim: int = 64, force: bool = False) -> Path:
    """Build (or reuse) the tiny model in `out_dir` and return the folder.

    The folder is reused when it already holds a model of the same recipe and settings, so callers can point
    this at a cache folder. `hidden_size`/`num_layers` exist for benchmarks that want a slightly larger model.
    The attention heads are `head_dim` wide (hidden_size // head_dim heads, half as many key/value heads when
    there are several): 64 is a size every vLLM attention kernel takes, on the CPU as on a GPU.
    """
    if head_dim < 1 or hidden_size % head_dim:
        raise ValueError(f"hidden_size {hidden_size} is not a multiple of head_dim {head_dim}")
    out = Path(out_dir)
    settings = {"recipe": RECIPE, "seed": seed, "vocab_size": vocab_size, "hidden_size": hidden_size,
                "num_layers": num_layers, "head_dim": head_dim}
    marker = out / "jleval-tiny.json"
    if not force and marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == settings:
                return out
        except (OSError, ValueError):
            pass

    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    heads = hidden_size // head_dim
    backend = _train_tokenizer(vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        additional_special_tokens=SPECIAL_TOKENS[3:], model_max_length=CONTEXT,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(  # pylint: disable=unexpected-keyword-arg
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers, num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
        head_dim=head_dim,
        max_position_embeddings=CONTEXT, rms_norm_eps=1e-5, tie_word_embeddings=False,
        # Large random weights make the logits far apart, so greedy decoding does not hinge on rounding:
        # batched (padded) and one-at-a-time runs pick the same tokens.
        initializer_range=0.5,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(torch.float32).eval()
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    atomic_write_json(marker, settings)
    return out
