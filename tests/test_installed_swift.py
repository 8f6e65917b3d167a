"""The swift that will run: where it is, its version and its flags, read in its own Python, cached,
never stale; without swift (a fake interpreter prints the answer), and once against the real ms-swift."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_sweep

from swiftops import installed_swift
from swiftops.installed_swift import (
    MARKER,
    SwiftArgs,
    cache_path,
    find_swift,
    installed_swift_version,
    interpreter_of,
    load_swift_args,
    metadata_version,
    own_swift_version,
    parse_probe_output,
    parse_shebang,
    parse_version,
    swift_args_for,
)
from swiftops.prepare import check_job

SFT = ["model", "learning_rate", "learning-rate", "lora_rank", "lora_dropout", "use_hf", "no_use_hf"]
INFER = ["adapters", "max_batch_size", "max_new_tokens", "temperature", "result_path"]
EXPORT = ["adapters", "merge_lora", "output_dir", "exist_ok", "safe_serialization"]


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


class FakeSwift:
    """A `swift` script whose shebang names a fake Python: a shell script that counts its calls
    and prints a canned probe answer, for an ms-swift 'installed' at a dist-info folder of ours."""

    def __init__(self, root: Path):
        self.root = root
        self.dist_info = root / "site-packages" / "ms_swift-4.6.0.dist-info"
        self.answer_file = root / "answer.txt"
        self.calls = root / "calls.txt"
        self.python = executable(
            root / "env" / "bin" / "python3",
            f"#!/bin/sh\necho call >> '{self.calls}'\necho '[INFO:swift] noise'\ncat '{self.answer_file}'\n",
        )
        self.swift = executable(root / "env" / "bin" / "swift", f"#!{self.python}\nimport swift\n")
        self.install("4.6.0")

    def install(self, version: str, **answer) -> None:
        self.dist_info.mkdir(parents=True, exist_ok=True)
        (self.dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: ms_swift\nVersion: {version}\n\n"
        )
        body = {
            "version": version,
            "dist_info": str(self.dist_info),
            "sft": SFT,
            "infer": INFER,
            "export": EXPORT,
        }
        body.update(answer)
        self.answer_file.write_text(MARKER + json.dumps(body) + "\n")

    @property
    def probes(self) -> int:
        return len(self.calls.read_text().splitlines()) if self.calls.exists() else 0


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SWIFTOPS_CACHE", str(folder))
    installed_swift.forget()
    yield folder
    installed_swift.forget()


@pytest.fixture
def fake(tmp_path) -> FakeSwift:
    return FakeSwift(tmp_path / "fake")


@pytest.mark.parametrize(
    ("head", "program"),
    [
        ("#!/venv/bin/python3\nimport x\n", "/venv/bin/python3"),
        ("#!/venv/bin/python3.11 -E\n", "/venv/bin/python3.11"),
        ("#!/bin/sh\n'''exec' \"/a long/path/python\" \"$0\" \"$@\"\n' '''\n", "/a long/path/python"),
        ("#!/bin/sh\necho hi\n", None),
        ("import sys\n", None),
        ("", None),
    ],
)
def test_the_shebang_names_swifts_interpreter(head, program):
    assert parse_shebang(head) == program


def test_env_shebangs_are_looked_up_on_path():
    assert parse_shebang("#!/usr/bin/env python3\n") == shutil.which("python3")
    assert parse_shebang("#!/usr/bin/env -S PYTHONUTF8=1 python3 -u\n") == shutil.which("python3")


def test_a_script_that_names_no_python_runs_with_ours(tmp_path, fake):
    assert interpreter_of(str(fake.swift)) == str(fake.python)  # not resolved: a venv's python is a link
    shell = executable(tmp_path / "sh_swift", "#!/bin/sh\nexec true\n")
    assert interpreter_of(str(shell)) == sys.executable
    assert interpreter_of(str(tmp_path / "absent")) == sys.executable
    binary = tmp_path / "binary"
    binary.write_bytes(b"\x7fELF\x00\x01")
    assert interpreter_of(str(binary)) == sys.executable


def test_the_probe_answer_is_read_past_swifts_own_output():
    answer = {"version": "4.6.0", "dist_info": "/d", "sft": ["a"], "infer": ["b"], "export": ["c"]}
    text = "[INFO:swift] Successfully registered ...\n" + MARKER + json.dumps(answer) + "\n"
    parsed = parse_probe_output("/py", text)
    assert parsed == SwiftArgs("/py", "4.6.0", {"sft": {"a"}, "infer": {"b"}, "export": {"c"}}, "/d")
    assert parsed.parsed_version == (4, 6, 0)


def test_a_broken_swift_answers_with_its_error():
    broken = parse_probe_output("/py", MARKER + json.dumps({"version": "4.6.0", "error": "ImportError: x"}))
    assert broken.error == "ImportError: x" and broken.names == {} and broken.version == "4.6.0"
    silent = parse_probe_output("/py", "", "Traceback ...\nSyntaxError: bad", returncode=1)
    assert silent.version is None and "exit 1" in silent.error and "SyntaxError" in silent.error


def test_first_check_probes_then_the_cache_answers_without_a_subprocess(cache, fake):
    first = load_swift_args(str(fake.python))
    assert first.version == "4.6.0" and not first.cached and first.error is None
    assert "learning_rate" in first.names["sft"] and fake.probes == 1
    assert cache_path(str(fake.python)).is_file()
    started = time.perf_counter()
    second = load_swift_args(str(fake.python))
    elapsed = time.perf_counter() - started
    assert second.cached and second.names == first.names and fake.probes == 1
    assert elapsed < 0.05, elapsed


def test_an_upgrade_makes_the_cache_stale(cache, fake):
    load_swift_args(str(fake.python))
    fake.install("4.7.0", sft=[*SFT, "new_flag"])  # same dist-info folder, new METADATA
    upgraded = load_swift_args(str(fake.python))
    assert upgraded.version == "4.7.0" and "new_flag" in upgraded.names["sft"] and fake.probes == 2
    # pip removes the old dist-info folder: the cache can't vouch for itself and is read again
    (fake.dist_info / "METADATA").unlink()
    fake.dist_info.rmdir()
    newer = fake.root / "site-packages" / "ms_swift-4.8.0.dist-info"
    fake.dist_info = newer
    fake.install("4.8.0")
    assert load_swift_args(str(fake.python)).version == "4.8.0" and fake.probes == 3
    assert load_swift_args(str(fake.python)).cached and fake.probes == 3


def test_the_cache_is_per_interpreter(cache, fake, tmp_path):
    load_swift_args(str(fake.python))
    other = FakeSwift(tmp_path / "other")
    assert cache_path(str(other.python)) != cache_path(str(fake.python))
    assert not load_swift_args(str(other.python)).cached and other.probes == 1


def test_a_failed_probe_is_not_cached_and_warned_about_once(cache, fake, caplog):
    fake.answer_file.write_text("Traceback (most recent call last):\nImportError: libtorch.so\n")
    assert load_swift_args(str(fake.python)).error and fake.probes == 1
    assert not cache_path(str(fake.python)).exists()
    with caplog.at_level("WARNING", logger="swiftops"):
        for _ in range(3):
            answer = swift_args_for(str(fake.swift))
    assert answer.names == {} and fake.probes == 2  # memoized: a sweep's checks probe once
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(fake.swift) in warnings[0] and "not checked" in warnings[0]


@pytest.mark.parametrize(
    ("layout", "sft_class"),
    [("4.x", "from swift import SftArguments"), ("3.12", "from swift.llm import TrainArguments")],
)
def test_the_probe_reads_the_flags_where_each_ms_swift_line_keeps_them(tmp_path, layout, sft_class):
    """The probe program itself, run on a `swift` package of each layout: 4.x exports SftArguments at
    the top, 3.12 has sft's arguments as swift.llm.TrainArguments."""
    package = tmp_path / "site" / "swift"
    (package / "llm").mkdir(parents=True)
    classes = (
        "import dataclasses\n"
        "@dataclasses.dataclass\nclass {sft}:\n    learning_rate: float = 1e-4\n    lora_rank: int = 8\n"
        "@dataclasses.dataclass\nclass InferArguments:\n    adapters: str = ''\n"
        "@dataclasses.dataclass\nclass ExportArguments:\n    merge_lora: bool = False\n"
    )
    if layout == "4.x":
        (package / "__init__.py").write_text("__version__ = '4.6.0'\n" + classes.format(sft="SftArguments"))
        (package / "llm" / "__init__.py").write_text("")
    else:
        (package / "__init__.py").write_text("__version__ = '3.12.6'\n")
        (package / "llm" / "__init__.py").write_text(classes.format(sft="TrainArguments"))
    python = executable(
        tmp_path / "bin" / "python3",
        f"#!/bin/sh\nPYTHONPATH='{tmp_path / 'site'}' exec '{sys.executable}' \"$@\"\n",
    )
    answer = installed_swift.run_probe(str(python))
    assert answer.error is None, (sft_class, answer.error)
    assert {"learning_rate", "lora_rank"} <= answer.names["sft"] and "adapters" in answer.names["infer"]
    assert "merge_lora" in answer.names["export"]


def test_metadata_version_reads_the_header_only(tmp_path):
    (tmp_path / "METADATA").write_text("Name: ms_swift\nVersion: 3.12.6\n\nVersion: 9 (in the description)\n")
    assert metadata_version(str(tmp_path)) == "3.12.6"
    assert metadata_version(str(tmp_path / "gone")) is None and metadata_version(None) is None


def test_the_version_that_picks_flag_names_is_the_running_swifts(cache, fake, monkeypatch):
    fake.install("3.12.6")
    assert installed_swift_version(str(fake.swift)) == (3, 12, 6)
    # no swift at all: the old answer, the ms-swift beside the orchestrator
    monkeypatch.setattr(installed_swift, "swift_args_for", lambda swift_bin: None)
    assert installed_swift_version("nope") == own_swift_version()


def test_check_job_refuses_unknown_flags_of_the_swift_that_will_run(cache, fake, composed):
    cfg = composed([f"swift_bin={fake.swift}", "+args.learnig_rate=1e-4", "+export.args.merge_lroa=true"])
    problems = check_job(cfg, swift_found=True)
    assert problems == [
        "args.learnig_rate: swift sft has no --learnig_rate; did you mean --learning_rate?",
        "export.args.merge_lroa: swift export has no --merge_lroa; did you mean --merge_lora?",
    ]
    # a 3.x swift gets --train_type for tuner_type: the pass-through is checked under that name
    fake.install("3.12.6", sft=[*SFT, "train_type"])
    installed_swift.forget()
    assert check_job(composed([f"swift_bin={fake.swift}", "+args.tuner_type=full"]), swift_found=True) == []


def test_a_broken_swift_skips_the_name_check_but_not_the_run(cache, fake, composed):
    fake.answer_file.write_text("nothing\n")
    assert check_job(composed([f"swift_bin={fake.swift}", "+args.anything=1"]), swift_found=True) == []


@pytest.mark.integration
def test_real_swift_refuses_a_typo_at_once_and_the_cli_exits_2_before_swift_starts(tmp_path, monkeypatch):
    swift_bin = find_swift(None)
    if not swift_bin:
        pytest.skip("ms-swift is not installed")
    cache = tmp_path / "cache"
    monkeypatch.setenv("SWIFTOPS_CACHE", str(cache))
    interpreter = interpreter_of(swift_bin)
    first = load_swift_args(interpreter)
    assert first.error is None, first.error
    assert {"learning_rate", "tuner_type", "lora_rank"} <= first.names["sft"]
    assert {"max_batch_size", "result_path"} <= first.names["infer"] and "merge_lora" in first.names["export"]
    started = time.perf_counter()
    second = load_swift_args(interpreter)
    elapsed = time.perf_counter() - started
    assert second.cached and elapsed < 0.1, elapsed

    env = {**os.environ, "SWIFTOPS_CACHE": str(cache)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "swiftops", "+args.no_such_flag=1", "+args.learnig_rate=1e-4"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "args.no_such_flag: swift sft has no --no_such_flag" in done.stderr
    assert "did you mean --learning_rate?" in done.stderr
    assert not list(tmp_path.rglob("swift.log")) and not list(tmp_path.rglob("run.json"))
    assert time.perf_counter() - started < 30  # no swift start-up, no tiny build


@pytest.mark.sweep
def test_a_sweep_with_an_unknown_flag_stops_before_any_job(
    hydra_sweep_runner, tmp_path, cache, fake, stand_in_files, capsys
):
    from swiftops.record import find_records

    model, data = stand_in_files
    sweep_dir = tmp_path / "sweep"
    overrides = [f"model.id={model}", f"data.dataset=[{data}]", "progress=false", "report.enabled=false"]
    overrides += [f"swift_bin={fake.swift}", "lr=1e-4,1e-3", "+args.lora_dropuot=0.1", "+args.x={a:nan}"]
    runner = run_sweep(hydra_sweep_runner, sweep_dir, overrides)
    with pytest.raises(SystemExit) as stop, runner:
        pass
    assert stop.value.code == 2
    message = capsys.readouterr().err
    assert "args.lora_dropuot: swift sft has no --lora_dropuot; did you mean --lora_dropout?" in message
    assert message.count("lora_dropuot") == 2  # once, though every combination has it
    assert "args.x.a = nan is not a finite number" in message
    assert not find_records(sweep_dir) and fake.probes == 1


def test_keys_added_to_swift_flag_sections_are_checked_on_the_command_line(cache, fake):
    """+train.*, +data.* and +runtime.flags.* become `swift sft` flags as they are: a typo there
    is refused before Hydra composes, as +args.* is (the shipped keys are not checked here)."""
    from swiftops.configs import register
    from swiftops.overrides import overrides_problems, parse

    register()

    def problems(*overrides: str) -> list[str]:
        parsed, syntax = parse([f"swift_bin={fake.swift}", *overrides])
        assert syntax == []
        return overrides_problems(parsed, multirun=False)

    assert problems("+train.lora_dropout=0.1", "+data.use_hf=true") == []
    assert problems("+train.lora_dropuot=0.1") == [
        "+train.lora_dropuot=0.1: swift sft has no --lora_dropuot; did you mean --lora_dropout?"
    ]
    assert problems("+runtime.flags.lora_drop=0.1") == []  # a unique prefix, as argparse takes it
    assert problems("+train.lora_dropuot=0.1", "+args.ignore_args_error=true") == []
    assert problems("+data.test_dataset=x.jsonl") != []  # swiftops' own key: there already, not a flag


@pytest.mark.parametrize(
    ("text", "version"), [("4.6.0", (4, 6, 0)), ("3.12.6", (3, 12, 6)), ("4.1.0rc1", (4, 1, 0)), ("5", (5,))]
)
def test_parse_version(text, version):
    assert parse_version(text) == version


def test_the_version_is_asked_of_the_swift_that_will_run_with_ours_as_the_fallback(monkeypatch):
    asked = []

    def answer(swift_bin):
        asked.append(swift_bin)
        return SwiftArgs("/py", "3.12.6", {})

    monkeypatch.setattr(installed_swift, "swift_args_for", answer)
    assert installed_swift_version("/env3/bin/swift") == (3, 12, 6) and asked == ["/env3/bin/swift"]
    monkeypatch.setattr(installed_swift, "swift_args_for", lambda swift_bin: SwiftArgs("/py", error="broken"))
    assert installed_swift_version() == own_swift_version()  # the old answer, as a fallback
