#!/usr/bin/env python3
"""Generate the tiny random-weight Llama and its byte-level BPE tokenizer that the real vLLM serves in tests.

Why: no model can be downloaded on the project's machines, and the tests need a real vLLM engine (real
scheduler, paged KV cache, prefix caching, ``/metrics``), not a meaningful model. So the model is made here:
``LlamaConfig(vocab 2048, hidden 128, intermediate 256, 2 layers, 4 heads, 2 KV heads, head_dim 32)`` in bf16
(~0.8 M parameters, ~1.8 MB of safetensors, 512 bytes of KV per token), with a byte-level BPE of 2048 tokens
trained on the standard library's ``*.py`` files (always on disk), special tokens for BOS/EOS/PAD and chat
roles, and a minimal chat template. Its output is random text: send ``ignore_eos: true`` for fixed lengths.

Run it with the python of the vLLM venv (it has ``torch``, ``transformers`` and ``tokenizers``)::

    ~/.cache/vllm-fleet-gateway/vllm-venv/bin/python scripts/make_tiny_model.py [--out DIR]

Idempotent: a directory already holding this recipe (``RECIPE`` in ``.complete``) is left alone; a new one is
built in a temporary sibling and renamed into place, so an interrupted run never leaves a half model.
Deterministic: fixed seed, sorted training files. Default ``--out``: ``$REALVLLM_MODEL_DIR`` or
``$REALVLLM_CACHE/tiny-model`` (``REALVLLM_CACHE`` defaults to ``~/.cache/vllm-fleet-gateway``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

RECIPE = "tiny-llama-v1: vocab 2048, hidden 128, ffn 256, 2 layers, 4/2 heads, head_dim 32, bf16, seed 0"
VOCAB_SIZE = 2048
MAX_POSITION = 2048
SEED = 0
TRAINING_BYTES = 8 << 20
"""Stop reading stdlib files after this much text: enough for 2048 merges, and training stays a few seconds."""

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
CHAT_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def default_out() -> Path:
    if explicit := os.environ.get("REALVLLM_MODEL_DIR"):
        return Path(explicit)
    cache = os.environ.get("REALVLLM_CACHE") or Path.home() / ".cache" / "vllm-fleet-gateway"
    return Path(cache) / "tiny-model"


def training_files() -> list[str]:
    """The standard library's ``*.py`` files in a fixed order, up to ``TRAINING_BYTES``."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files, total = [], 0
    for path in sorted(stdlib.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        files.append(str(path))
        total += path.stat().st_size
        if total >= TRAINING_BYTES:
            break
    return files


def make_tokenizer(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[BOS, EOS, PAD, *CHAT_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train(training_files(), trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=list(CHAT_TOKENS),
        model_max_length=MAX_POSITION,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    wrapped.save_pretrained(out)


def make_model(out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(out)
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=MAX_POSITION,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=default_out(), help="model directory (env REALVLLM_MODEL_DIR)")
    args = parser.parse_args(argv)
    out: Path = args.out.expanduser().resolve()
    stamp = out / ".complete"
    if stamp.exists() and stamp.read_text().strip() == RECIPE:
        print(f"[make_tiny_model] {out} already holds {RECIPE!r}", flush=True)
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-model-", dir=out.parent))
    try:
        print(f"[make_tiny_model] training the tokenizer (vocab {VOCAB_SIZE}) on the stdlib", flush=True)
        make_tokenizer(tmp)
        print("[make_tiny_model] building the random Llama (seed 0, bf16)", flush=True)
        make_model(tmp)
        (tmp / ".complete").write_text(RECIPE + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it 0700
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    print(f"[make_tiny_model] wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
