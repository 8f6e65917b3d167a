"""The built-in tiny default: asset paths, the manifest check that decides a rebuild, the
synthetic data, and (integration) a real build plus one real `swift sft` on it."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from swiftops import tiny, tiny_data

# ---------------------------------------------------------------- paths and imports


def test_paths_live_under_a_versioned_root_and_touch_nothing(tmp_path):
    cache = tmp_path / "nowhere"
    assets = tiny.tiny_assets(cache)
    assert assets.root == cache / f"tiny-v{tiny.VERSION}-tf{tiny.transformers_major()}"
    assert assets.model_dir == assets.root / "model"
    for name, path in vars(assets).items():
        assert path == assets.root or assets.root in path.parents, name
    assert assets.math_train_100.name == "math_train_100.jsonl"
    assert not cache.exists()  # paths only, no I/O


def test_default_cache_follows_swiftops_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SWIFTOPS_CACHE", str(tmp_path / "c"))
    assert tiny.tiny_assets().root.parent == tmp_path / "c"


def test_each_transformers_major_version_builds_its_own_model(monkeypatch, tmp_path):
    """A model saved by transformers 5 does not load in 4.x: one cache, a folder for each."""
    roots = set()
    for major in ("4", "5", ""):
        monkeypatch.setattr(tiny, "transformers_major", lambda major=major: major)
        roots.add(tiny.tiny_assets(tmp_path).root.name)
    assert roots == {f"tiny-v{tiny.VERSION}-tf4", f"tiny-v{tiny.VERSION}-tf5", f"tiny-v{tiny.VERSION}"}


def test_importing_tiny_imports_no_torch():
    code = (
        "import sys, swiftops.tiny; print(sorted({'torch', 'transformers', 'tokenizers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- manifest: when to rebuild


def test_manifest_problems_pure():
    expected = {"a.txt": "1", "model/b.bin": "2"}
    assert tiny.manifest_problems(expected, dict(expected)) == []
    assert tiny.manifest_problems(expected, {"a.txt": "1"}) == ["missing model/b.bin"]
    assert tiny.manifest_problems(expected, {"a.txt": "X", "model/b.bin": "2"}) == ["changed a.txt"]
    assert tiny.manifest_problems(None, dict(expected)) == ["no readable manifest (the build did not finish)"]
    # extra files (e.g. a later tool's cache) do not force a rebuild
    assert tiny.manifest_problems(expected, {**expected, "extra": "3"}) == []


def fake_tree(assets: tiny.TinyAssets) -> None:
    """Stand-in for a finished build: every asset file plus the manifest."""
    for name, path in vars(assets).items():
        if name in ("root", "model_dir"):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name}\n", encoding="utf-8")
    assets.model_dir.mkdir(parents=True, exist_ok=True)
    (assets.model_dir / "model.safetensors").write_bytes(b"\x00weights")
    tiny.write_manifest(assets.root)


def test_rebuild_reasons_detect_each_kind_of_damage(tmp_path):
    assets = tiny.tiny_assets(tmp_path)
    assert tiny.rebuild_reasons(assets) == [f"{assets.root} does not exist"]
    fake_tree(assets)
    assert tiny.rebuild_reasons(assets) == []

    weights = assets.model_dir / "model.safetensors"
    weights.write_bytes(b"\x00weightz")
    assert tiny.rebuild_reasons(assets) == ["changed model/model.safetensors"]
    weights.write_bytes(b"\x00weights")
    assert tiny.rebuild_reasons(assets) == []

    assets.math_test.unlink()
    assert tiny.rebuild_reasons(assets) == ["missing data/math_test.jsonl"]


def test_rebuild_when_manifest_missing_broken_or_of_another_version(tmp_path):
    assets = tiny.tiny_assets(tmp_path)
    fake_tree(assets)
    manifest = assets.root / tiny.MANIFEST
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "version": tiny.VERSION + 1}))
    assert tiny.rebuild_reasons(assets)
    manifest.write_text("{not json")
    assert tiny.rebuild_reasons(assets)
    manifest.unlink()
    assert tiny.rebuild_reasons(assets) == ["no readable manifest (the build did not finish)"]


class FakeBuild:
    """Replaces the build subprocess: writes a fake tree, counts calls, takes `seconds`."""

    def __init__(self, seconds: float = 0.0, returncode: int = 0):
        self.calls = 0
        self.seconds = seconds
        self.returncode = returncode

    def __call__(self, argv, **kwargs):
        self.calls += 1
        assert argv[1:4] == ["-m", "swiftops.tiny", "build"]
        cache = Path(argv[argv.index("--cache") + 1])
        time.sleep(self.seconds)
        if self.returncode == 0:
            fake_tree(tiny.tiny_assets(cache))
        else:
            kwargs["stdout"].write(b"Traceback: boom\n")
        return subprocess.CompletedProcess(argv, self.returncode)


def test_ensure_builds_when_missing_then_reuses(tmp_path, monkeypatch, caplog):
    fake = FakeBuild()
    monkeypatch.setattr(tiny.subprocess, "run", fake)
    with caplog.at_level(logging.INFO, logger="swiftops.tiny"):
        assets = tiny.ensure_tiny_assets(tmp_path)
    assert fake.calls == 1
    assert any("building the tiny model into" in r.getMessage() for r in caplog.records)
    assert tiny.ensure_tiny_assets(tmp_path) == assets
    assert fake.calls == 1  # intact: no second build


def test_ensure_rebuilds_a_damaged_tree(tmp_path, monkeypatch):
    fake = FakeBuild()
    monkeypatch.setattr(tiny.subprocess, "run", fake)
    assets = tiny.ensure_tiny_assets(tmp_path)
    assets.demo_train.write_text("tampered\n")
    tiny.ensure_tiny_assets(tmp_path)
    assert fake.calls == 2
    assert tiny.rebuild_reasons(assets) == []


def test_concurrent_callers_build_once(tmp_path, monkeypatch):
    fake = FakeBuild(seconds=0.5)
    monkeypatch.setattr(tiny.subprocess, "run", fake)
    errors: list[BaseException] = []

    def call():
        try:
            tiny.ensure_tiny_assets(tmp_path)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert fake.calls == 1


def test_failed_build_raises_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(tiny.subprocess, "run", FakeBuild(returncode=1))
    with pytest.raises(RuntimeError, match=r"(?s)exit 1.*boom"):
        tiny.ensure_tiny_assets(tmp_path)


# ---------------------------------------------------------------- synthetic data


def checked_steps(text: str) -> int:
    """Check every equation chain ('a × b = c', units and words dropped) in a worked answer;
    return how many were checked."""
    text = re.sub(r"\\frac\{(\d+)\}\{(\d+)\}", r"(\1/\2)", text).replace("\\times", "×").replace("%", "/100")
    count = 0
    for clause in re.split(r"[\n:：，,。；;]", text):
        arithmetic = re.sub(r"[^\d()+\-×÷/=]", " ", clause)
        values = []
        for side in arithmetic.split("="):
            try:  # a side like '边长 × 4' (a word, dropped, times 4) is words, not arithmetic
                values.append(eval(side.replace("×", "*").replace("÷", "/")))
            except SyntaxError:
                continue
        # '1千米 = 100000厘米' is a unit conversion, not a step: a step has an operator
        if len(values) >= 2 and re.search(r"\d\s*[+\-×÷/]\s*\(?\d", arithmetic):
            assert all(math.isclose(v, values[-1]) for v in values), f"{clause!r} in {text!r}"
            count += 1
    return count


def test_math_splits_are_deterministic_and_disjoint():
    a, b = tiny_data.math_splits(0), tiny_data.math_splits(0)
    assert a == b
    assert tiny_data.math_splits(1) != a
    assert (len(a.pretrain), len(a.train_1k), len(a.test)) == (600, 1000, 10)
    questions = [p.question for p in a.pretrain + a.train_1k + a.test]
    assert len(set(questions)) == len(questions)
    assert {p.lang for p in a.train_1k + a.test} == {"zh"}
    assert {p.lang for p in a.pretrain} == {"zh", "en"}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_answer_ends_with_a_correct_ans_tag(lang):
    problems = tiny_data.generate_problems(3, lang)
    for _ in range(300):
        problem = next(problems)
        row = tiny_data.as_messages(problem)
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant"]
        answer = row["messages"][2]["content"]
        tag = re.fullmatch(r"(?s).*\n\n\{\{ans:(\d+)\}\}", answer)
        assert tag, answer
        assert int(tag.group(1)) == problem.value
        assert checked_steps(problem.solution) >= 1
        # the final value is the result of the worked steps, not just any number
        assert str(problem.value) in problem.solution


def test_every_kind_of_problem_is_generated_in_both_languages():
    rng_problems = tiny_data.math_splits(0).train_1k
    header = tiny_data.ZH_HEADER
    assert all(tiny_data.as_messages(p)["messages"][1]["content"].startswith(header) for p in rng_problems)
    for kind in tiny_data.KINDS:
        zh_q, zh_a, en_q, en_a, value = kind(random.Random(0))
        assert re.search(r"[\u4e00-\u9fff]", zh_q) and not re.search(r"[\u4e00-\u9fff]", en_q + en_a)
        assert checked_steps(zh_a) >= 1 and checked_steps(en_a) >= 1
        assert value > 0


def test_pretraining_text_has_no_tutorial_format():
    for problem in tiny_data.math_splits(0).pretrain[:50]:
        text = json.dumps(tiny_data.as_pretrain_chat(problem), ensure_ascii=False)
        assert "{{ans:" not in text and "#输出#" not in text and "#Output#" not in text


def test_demo_split_is_held_out_and_correct():
    demo = tiny_data.demo_split(0)
    assert demo == tiny_data.demo_split(0)
    assert (len(demo.train), len(demo.test)) == (200, 10)
    train_questions = {r["messages"][1]["content"] for r in demo.train}
    assert not train_questions & {r["messages"][1]["content"] for r in demo.test}
    for row in demo.train + demo.test:
        assert checked_steps(row["messages"][2]["content"]) == 1


def test_self_cognition_has_eight_pairs_with_placeholders():
    rows = tiny_data.self_cognition_rows()
    assert len(rows) == 8
    for row in rows:
        answer = row["messages"][-1]["content"]
        assert "{{NAME}}" in answer and "{{AUTHOR}}" in answer


# ---------------------------------------------------------------- integration: real build, real swift


def swift_executable() -> str:
    beside = Path(sys.executable).parent / "swift"
    found = str(beside) if beside.exists() else shutil.which("swift")
    assert found, "the integration tier needs ms-swift installed (pip install ms-swift)"
    return found


@pytest.fixture(scope="session")
def built_tiny(tmp_path_factory) -> tiny.TinyAssets:
    """A real build into a fresh cache, once per test session."""
    return tiny.ensure_tiny_assets(tmp_path_factory.mktemp("tiny-cache"))


@pytest.mark.integration
def test_real_build_is_complete_and_sane(built_tiny):
    assert tiny.rebuild_reasons(built_tiny) == []
    info = json.loads((built_tiny.root / "build.json").read_text())
    losses = info["pretrain_loss_per_epoch"]
    assert len(losses) == tiny.RECIPE.pretrain_epochs
    assert losses[-1] < losses[0] / 3  # the pretraining did learn
    config = json.loads((built_tiny.model_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["tie_word_embeddings"]
    lines = built_tiny.math_train_1k.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1000
    assert built_tiny.math_train_100.read_text(encoding="utf-8").splitlines() == lines[:100]


@pytest.mark.integration
def test_real_swift_sft_on_the_demo_data_learns(built_tiny, tmp_path):
    out = tmp_path / "out"
    argv = [
        swift_executable(), "sft",
        "--model", str(built_tiny.model_dir), "--model_type", "qwen2", "--template", "qwen",
        "--tuner_type", "lora", "--dataset", str(built_tiny.demo_train), "--split_dataset_ratio", "0.1",
        "--learning_rate", "1e-3", "--lora_rank", "8", "--num_train_epochs", "2",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
        "--gradient_accumulation_steps", "4", "--eval_steps", "6", "--save_steps", "6",
        "--logging_steps", "6", "--output_dir", str(out), "--add_version", "false",
        "--fp16", "false", "--check_model", "false", "--dataloader_num_workers", "0",
        "--gradient_checkpointing", "false", "--logging_nan_inf_filter", "false",
        "--report_to", "tensorboard",
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    assert any("train_runtime" in r for r in rows)
    evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert len(evals) >= 3 and all(math.isfinite(v) for v in evals)
    assert evals[-1] < evals[0] - 0.3, evals
