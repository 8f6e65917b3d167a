"""The built-in tiny default: a 2-layer Qwen2 chat model with its own tokenizer, and small
data sets, built offline and deterministically on first use into the cache.

The model is briefly pretrained (all parameters) on synthetic math text so that LoRA on it
behaves like LoRA on a real pretrained base: a too-high learning rate makes the training loss
RISE (a random-init tiny model never does that), a low one learns slowly, many epochs on 100
samples overfit. The data sets are generated from templates (see swiftops/tiny_data.py).

Importing this module costs nothing: torch, transformers and tokenizers are imported only by
the build, which runs in a subprocess (`python -m swiftops.tiny build`).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from swiftops import tiny_data
from swiftops.paths import cache_dir

log = logging.getLogger(__name__)

# Bump when anything that changes the built files changes (recipe, data, tokenizer, model shape).
VERSION = 1
MANIFEST = "manifest.json"
BUILD_SECONDS_HINT = 40  # what the log line promises (35 s measured on a busy 2-core machine)


@dataclass(frozen=True)
class Recipe:
    """How the tiny base is built. Every field changes the files: bump VERSION with it."""

    seed: int = 0
    vocab_size: int = 2048  # byte-level BPE trained on the built-in math text (zh + en)
    hidden_size: int = 64
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 1024
    # Larger than HF's 0.02 so that LoRA, with the embeddings frozen and tied, can move the logits.
    init_range: float = 0.2
    # The short full-parameter "pretraining" that makes the model behave like a pretrained base.
    pretrain_epochs: int = 15
    pretrain_lr: float = 3e-3
    pretrain_batch: int = 16
    pretrain_max_length: int = 320
    # One thread: the float sums (and so the bytes) are the same on every machine, and on a busy
    # 2-core machine 2 threads were 10x slower than 1 (they spin against other processes).
    threads: int = 1


RECIPE = Recipe()


@dataclass(frozen=True)
class TinyAssets:
    """Where the built-in tiny model and data live (paths only; see ensure_tiny_assets)."""

    root: Path  # <cache>/tiny-v<N>-tf<transformers major>
    model_dir: Path  # the pretrained tiny Qwen2 base: config.json, model.safetensors, tokenizer files
    demo_train: Path  # the default config's data: short arithmetic Q&A (messages format)
    demo_test: Path  # held-out demo questions for the infer stage
    math_train_100: Path  # word problems of the tutorial's kind (answers end with {{ans:N}}), 100 rows
    math_train_1k: Path  # 1000 rows; its first 100 are math_train_100
    math_test: Path  # a 10-question exam of the same kind
    self_cognition: Path  # 8 identity Q&A with {{NAME}} / {{AUTHOR}} placeholders
    pretrain_text: Path  # the base model's pretraining text, kept apart from all of the above


DATA_FILES = {
    "demo_train": "demo_train.jsonl",
    "demo_test": "demo_test.jsonl",
    "math_train_100": "math_train_100.jsonl",
    "math_train_1k": "math_train_1k.jsonl",
    "math_test": "math_test.jsonl",
    "self_cognition": "self_cognition.jsonl",
    "pretrain_text": "pretrain.jsonl",
}


@functools.cache
def transformers_major() -> str:
    """The major version of the transformers that builds the model, from its metadata ('' when none
    is installed). transformers 5 saves a tokenizer class 4.x can't load (TokenizersBackend), so two
    environments sharing one cache (ms-swift 4 and 3.12, say) each get a model of their own."""
    try:
        return importlib.metadata.version("transformers").split(".")[0]
    except importlib.metadata.PackageNotFoundError:
        return ""


def tiny_assets(cache: Path | None = None) -> TinyAssets:
    """The asset paths under `cache` (default: swiftops.paths.cache_dir()). No I/O but the
    transformers version's metadata."""
    major = transformers_major()
    name = f"tiny-v{VERSION}" + (f"-tf{major}" if major else "")
    root = Path(cache if cache is not None else cache_dir()) / name
    data = root / "data"
    return TinyAssets(root=root, model_dir=root / "model", **{k: data / v for k, v in DATA_FILES.items()})


# ---------------------------------------------------------------- manifest (pure core + thin I/O)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under root, except the manifest itself."""
    return {
        path.relative_to(root).as_posix(): sha256_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def manifest_problems(expected: Mapping[str, str] | None, found: Mapping[str, str]) -> list[str]:
    """Why a built tree does not match its manifest ([] = intact). `expected` is None when the
    manifest is missing or unreadable: the build never finished (it is written last)."""
    if expected is None:
        return ["no readable manifest (the build did not finish)"]
    problems = [f"missing {name}" for name in sorted(expected) if name not in found]
    problems += [
        f"changed {name}" for name in sorted(expected) if name in found and found[name] != expected[name]
    ]
    return problems


def read_manifest(root: Path) -> dict[str, str] | None:
    try:
        data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or data.get("version") != VERSION:
        return None
    return files


def write_manifest(root: Path) -> None:
    """Written last: its presence means the build finished."""
    payload = {"version": VERSION, "files": hash_tree(root)}
    (root / MANIFEST).write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def rebuild_reasons(assets: TinyAssets) -> list[str]:
    """Why the assets must be (re)built; [] when they are complete and undamaged."""
    if not assets.root.is_dir():
        return [f"{assets.root} does not exist"]
    return manifest_problems(read_manifest(assets.root), hash_tree(assets.root))


# ---------------------------------------------------------------- ensure (lock + subprocess)


def ensure_tiny_assets(cache: Path | None = None) -> TinyAssets:
    """The tiny assets, built first if missing or damaged (in a subprocess, under a file lock).

    Raises:
        RuntimeError: the build failed; the message holds the tail of its log.
    """
    assets = tiny_assets(cache)
    if not rebuild_reasons(assets):
        return assets
    cache_root = assets.root.parent
    cache_root.mkdir(parents=True, exist_ok=True)
    with FileLock(cache_root / f"{assets.root.name}.lock"):  # concurrent jobs build once
        reasons = rebuild_reasons(assets)  # another process may have built it while we waited
        if not reasons:
            return assets
        log.info(
            "building the tiny model into %s (first use, ~%d s; because: %s)",
            assets.root,
            BUILD_SECONDS_HINT,
            reasons[0],
        )
        log_path = cache_root / f"{assets.root.name}.build.log"
        with open(log_path, "wb") as out:
            proc = subprocess.run(
                [sys.executable, "-m", "swiftops.tiny", "build", "--cache", str(cache_root)],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if proc.returncode != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
            raise RuntimeError(
                f"building the tiny model failed (exit {proc.returncode}); log {log_path}:\n"
                + "\n".join(tail)
            )
        reasons = rebuild_reasons(assets)
        if reasons:
            raise RuntimeError(f"the tiny model build left a damaged tree at {assets.root}: {reasons}")
    return assets


# ---------------------------------------------------------------- the build (subprocess only)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_data(assets: TinyAssets, recipe: Recipe = RECIPE) -> dict[str, list]:
    """Write every data file; return what the tokenizer and the pretraining need."""
    splits = tiny_data.math_splits(recipe.seed)
    demo = tiny_data.demo_split(recipe.seed)
    _write_jsonl(assets.math_train_1k, [tiny_data.as_messages(p) for p in splits.train_1k])
    _write_jsonl(assets.math_train_100, [tiny_data.as_messages(p) for p in splits.train_1k[:100]])
    _write_jsonl(assets.math_test, [tiny_data.as_messages(p) for p in splits.test])
    _write_jsonl(assets.demo_train, demo.train)
    _write_jsonl(assets.demo_test, demo.test)
    _write_jsonl(assets.self_cognition, tiny_data.self_cognition_rows())
    pretrain = [tiny_data.as_pretrain_chat(p) for p in splits.pretrain]
    _write_jsonl(assets.pretrain_text, pretrain)
    return {"corpus": tiny_data.tokenizer_corpus(splits, demo.train + demo.test), "pretrain": pretrain}


# Same normalizer/pre-tokenizer as transformers' Qwen2Tokenizer (which AutoTokenizer picks for
# model_type=qwen2 and which re-installs this pipeline on load), so both paths tokenize alike.
QWEN2_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen2-style ChatML chat template (the shape of Qwen2.5-Instruct's, without tools)
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build_tokenizer(corpus: list[str], model_dir: Path, recipe: Recipe = RECIPE):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=recipe.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=recipe.max_positions,
        clean_up_tokenization_spaces=False,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.save_pretrained(model_dir)
    return hf_tok


def _chat_ids(tokenizer, messages: list[dict]) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tokenize=True)
    if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def build_model(tokenizer, pretrain_rows: list[dict], model_dir: Path, recipe: Recipe = RECIPE) -> dict:
    """A random-init Qwen2, pretrained on all parameters with a plain torch loop; saved to
    model_dir. Returns the pretraining loss per epoch."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    torch.use_deterministic_algorithms(True)
    pad_id = tokenizer.pad_token_id
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    cfg = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_kv_heads,
        max_position_embeddings=recipe.max_positions,
        tie_word_embeddings=True,
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        initializer_range=recipe.init_range,
    )
    # matches 2 swift types (qwen2, qwen2_gte): pass --model_type qwen2 --template qwen
    cfg.architectures = ["Qwen2ForCausalLM"]
    model = Qwen2ForCausalLM(cfg).to(torch.float32)

    sequences = [_chat_ids(tokenizer, row["messages"])[: recipe.pretrain_max_length] for row in pretrain_rows]
    generator = torch.Generator().manual_seed(recipe.seed)
    steps_per_epoch = -(-len(sequences) // recipe.pretrain_batch)
    total_steps = steps_per_epoch * recipe.pretrain_epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.pretrain_lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps))
    )
    epoch_losses = []
    model.train()
    for _ in range(recipe.pretrain_epochs):
        order = torch.randperm(len(sequences), generator=generator).tolist()
        losses = []
        for start in range(0, len(order), recipe.pretrain_batch):
            batch = [sequences[i] for i in order[start : start + recipe.pretrain_batch]]
            width = max(len(s) for s in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, seq in enumerate(batch):
                input_ids[row, : len(seq)] = torch.tensor(seq)
                attention[row, : len(seq)] = 1
            labels = input_ids.masked_fill(attention == 0, -100)
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        epoch_losses.append(round(sum(losses) / len(losses), 4))
        print(
            f"pretrain epoch {len(epoch_losses)}/{recipe.pretrain_epochs}: loss {epoch_losses[-1]}",
            flush=True,
        )

    model.eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[eos_id, pad_id], pad_token_id=pad_id, bos_token_id=pad_id, do_sample=False
    )
    model.save_pretrained(model_dir, safe_serialization=True)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "pretrain_samples": len(sequences),
        "pretrain_loss_per_epoch": epoch_losses,
    }


def build(cache: Path | None = None, recipe: Recipe = RECIPE) -> TinyAssets:
    """Build everything into a fresh folder beside the final one, then swap it in, so a crash
    never leaves a half-built tree under the final name. Not locked: ensure_tiny_assets is."""
    final = tiny_assets(cache)
    final.root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.root.name}-", dir=final.root.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any other
    try:
        assets = TinyAssets(**{k: staging / Path(v).relative_to(final.root) for k, v in vars(final).items()})
        started = time.monotonic()
        inputs = write_data(assets, recipe)
        tokenizer = build_tokenizer(inputs["corpus"], assets.model_dir, recipe)
        info = build_model(tokenizer, inputs["pretrain"], assets.model_dir, recipe)
        info = {"version": VERSION, "recipe": vars(recipe), "vocab": len(tokenizer), **info}
        (staging / "build.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        write_manifest(staging)
        if final.root.exists():
            shutil.rmtree(final.root)
        os.replace(staging, final.root)
        print(f"built {final.root} in {time.monotonic() - started:.0f} s", flush=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swiftops.tiny", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=["build", "ensure", "path"], help="build: always; ensure: if needed"
    )
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: $SWIFTOPS_CACHE)")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.cache)
    elif args.command == "ensure":
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        ensure_tiny_assets(args.cache)
    print(tiny_assets(args.cache).root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
