"""The infer stage: `swift infer` of the chosen checkpoint over data.test_dataset, scored, beside
the base model's score: one `swift infer` without an adapter per sweep and key (base model, test
set, prompt, generation), cached and shared by the sweep's jobs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from swiftops.command import build_infer_argv, swift_env
from swiftops.dataset_files import local_path
from swiftops.installed_swift import installed_swift_version
from swiftops.prepare import has_identity_placeholders, materialize_identity, pair
from swiftops.record import COMPLETED, FAILED, INTERRUPTED, RunRecord
from swiftops.runfolder import read_json, read_lines
from swiftops.runner import run_swift
from swiftops.scoring import identity_names, score_rows, score_summary
from swiftops.stages.entry import finish_entry, start_entry

log = logging.getLogger("swiftops")

DEFAULT_MAX_NEW_TOKENS = 256


def infer_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The optional `infer` section: max_new_tokens, baseline (bool), args (extra flags)."""
    return dict(cfg.get("infer") or {})


def infer_extra(cfg: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Extra `swift infer` flags: the infer section's args, plus any given here."""
    # the runtime section's flags are training flags (swift 4.6's infer rejects --check_model
    # with "remaining_argv"), so none of them is passed here
    flags: dict[str, Any] = dict(extra or {})
    flags.update(infer_settings(cfg).get("args") or {})
    return flags


def infer_argv(
    cfg: Mapping[str, Any],
    *,
    test_dataset: str,
    result_path: str,
    adapters: str | None,
    swift_bin: str,
    extra: Mapping[str, Any] | None = None,
) -> list[str]:
    """`swift infer` as the infer stage runs it: the infer section's max_new_tokens and args."""
    return build_infer_argv(
        cfg,
        test_dataset=test_dataset,
        result_path=result_path,
        adapters=adapters,
        swift_bin=swift_bin,
        max_new_tokens=int(infer_settings(cfg).get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS),
        extra=infer_extra(cfg, extra),
        version=installed_swift_version(swift_bin),
    )


def resolve_test_set(cfg: Mapping[str, Any], out_dir: Path) -> str:
    """The test set for swift infer. A local self-cognition file with {{NAME}}/{{AUTHOR}} gets
    a filled copy in out_dir (as the training data does), so references name the model."""
    test = str(cfg["data"]["test_dataset"])
    local = Path(local_path(test) or test)
    name, author = pair(cfg["data"].get("model_name")), pair(cfg["data"].get("model_author"))
    if (name or author) and local.is_file() and has_identity_placeholders(local):
        return str(materialize_identity(local, out_dir / "data", name, author))
    return test


def is_adapter(checkpoint: Path) -> bool:
    return (checkpoint / "adapter_config.json").is_file()


def infer_stage(
    cfg: Mapping[str, Any], record: RunRecord, job_dir: Path, swift_bin: str, ckpt: str
) -> dict[str, Any]:
    """swift infer of the chosen checkpoint over data.test_dataset, scored, with the baseline."""
    entry, choice = start_entry(record, ckpt)
    if choice is None:
        return entry
    if not cfg["data"].get("test_dataset"):
        entry["error"] = "data.test_dataset is null: the infer stage needs a test set"
        return entry
    stage_dir = job_dir / "infer"
    stage_dir.mkdir(parents=True, exist_ok=True)
    run = infer_run(
        cfg,
        stage_dir=stage_dir,
        log_path=job_dir / "infer.log",
        cwd=job_dir,
        swift_bin=swift_bin,
        checkpoint=choice.path,
    )
    entry.update(run)
    if entry["status"] == COMPLETED and infer_settings(cfg).get("baseline", True):
        sweep_dir = Path(record.sweep_dir) if record.sweep_dir else job_dir
        try:
            entry["baseline"] = baseline_score(
                trained_from(cfg, choice.path), sweep_dir_or_job_dir=sweep_dir, swift_bin=swift_bin
            )
        except KeyboardInterrupt:
            entry["baseline"] = {"status": INTERRUPTED}
            entry["status"] = INTERRUPTED
        except Exception as exc:  # the baseline is a comparison: its failure must not fail the stage
            log.exception("baseline failed in %s", sweep_dir)
            entry["baseline"] = {"status": FAILED, "error": f"{type(exc).__name__}: {exc}"}
    return entry


def trained_from(cfg: Mapping[str, Any], checkpoint: Path) -> Mapping[str, Any]:
    """cfg with the model section of the base model an adapter was trained from (its args.json),
    so the baseline is that model even for `run=PATH` of a run trained on another one."""
    args = read_json(checkpoint / "args.json")
    if not is_adapter(checkpoint) or not args.get("model") or args["model"] == cfg["model"].get("id"):
        return cfg
    model = {
        **cfg["model"],
        "id": args["model"],
        "model_type": args.get("model_type"),
        "template": args.get("template") or cfg["model"].get("template"),
    }
    data = dict(cfg["data"])
    if args.get("system") and not data.get("system"):
        data["system"] = args["system"]
    return {**cfg, "model": model, "data": data}


def infer_run(
    cfg: Mapping[str, Any],
    *,
    stage_dir: Path,
    log_path: Path,
    cwd: Path,
    swift_bin: str,
    checkpoint: Path | None,
) -> dict[str, Any]:
    """One `swift infer` into stage_dir/result.jsonl, scored into stage_dir/score.json.
    checkpoint None = the base model; a full-parameter checkpoint is run as the model itself."""
    result_path, score_path = stage_dir / "result.jsonl", stage_dir / "score.json"
    for stale in (result_path, score_path):
        stale.unlink(missing_ok=True)  # swift appends to an existing result file
    test = resolve_test_set(cfg, stage_dir)
    extra: dict[str, Any] = {}
    adapters = None
    run_cfg: Mapping[str, Any] = cfg
    if checkpoint is not None and is_adapter(checkpoint):
        adapters = str(checkpoint)  # swift reads the base model, template and system from its args.json
    elif checkpoint is not None:
        run_cfg = {**cfg, "model": {**cfg["model"], "id": str(checkpoint)}}
    if adapters is None and cfg["data"].get("system"):
        extra["system"] = cfg["data"]["system"]  # the tuned run has it from args.json: same prompt for both
    argv = infer_argv(
        run_cfg,
        test_dataset=test,
        result_path=str(result_path),
        adapters=adapters,
        swift_bin=swift_bin,
        extra=extra,
    )
    entry: dict[str, Any] = {"argv": argv, "test_dataset": test, "result_path": str(result_path)}
    log.info("launching swift infer in %s", stage_dir)
    outcome = run_swift(argv, env=swift_env(cfg, os.environ), log_path=log_path, cwd=cwd)
    finish_entry(entry, outcome, log_path)
    if entry["status"] != COMPLETED:
        return entry
    rows = read_lines(result_path).rows
    if not rows:
        entry.update(status=FAILED, error=f"swift infer exited 0 but wrote no result lines to {result_path}")
        return entry
    score = score_rows(rows, cfg["data"])
    score_path.write_text(json.dumps(score, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    entry.update(score_summary(score), score_path=str(score_path))
    return entry


# ---------------------------------------------------------------- the base model


def baseline_key(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What a baseline depends on: two jobs with the same key share one."""
    data, model = cfg["data"], cfg["model"]
    return {
        "model": model.get("id"),
        "model_type": model.get("model_type"),
        "template": model.get("template"),
        "test_dataset": str(data.get("test_dataset")),
        "system": data.get("system"),
        "names": identity_names(data),
        "max_new_tokens": int(infer_settings(cfg).get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS),
        "args": infer_settings(cfg).get("args") or {},
    }


def baseline_dirs(root: Path, key: Mapping[str, Any]) -> list[Path]:
    """Where a baseline of this key may live: root/baseline (the first one of a sweep), or
    root/baseline-<hash> when a sweep compares several base models or test sets."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return [root / "baseline", root / f"baseline-{digest}"]


def same_key(recorded: Any, key: Mapping[str, Any]) -> bool:
    return json.loads(json.dumps(key, default=str)) == recorded


def read_baseline(folder: Path, key: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cached baseline of this key in folder, None when there is none (or another key's)."""
    cached = read_json(folder / "score.json")
    return cached if cached and same_key(cached.get("key"), key) else None


def claim_baseline_dir(root: Path, key: Mapping[str, Any]) -> Path:
    """The folder this key's baseline lives in: root/baseline for the first key that claims it,
    root/baseline-<hash> for any other. The claim (key.json) is written under the sweep's lock,
    held only for that; the run itself holds only its own folder's lock, so baselines of
    unrelated base models or test sets run side by side."""
    plain, own = baseline_dirs(root, key)
    with FileLock(root / ".baseline.lock"):
        claim = plain / "key.json"
        if claim.is_file() and not same_key(read_json(claim).get("key"), key):
            return own
        if not claim.is_file():
            plain.mkdir(parents=True, exist_ok=True)
            claim.write_text(json.dumps({"key": key}, indent=2, default=str) + "\n", encoding="utf-8")
        return plain


def baseline_score(cfg: Mapping[str, Any], *, sweep_dir_or_job_dir: Path, swift_bin: str) -> dict[str, Any]:
    """The base model (no adapter) over the test set, scored once per sweep and cached.

    The first job of a sweep that needs it runs `swift infer` into <sweep_dir>/baseline/
    (result.jsonl, score.json, infer.log) under that folder's file lock; the others with the same
    base model and test set wait for it and reuse it. A failed baseline is cached too (one try per
    sweep); an interrupted one is not.

    Returns:
        {status, scorer, score, n, ..., path}: the summary of the score (per item in score.json).
    """
    root = Path(sweep_dir_or_job_dir)
    key = baseline_key(cfg)
    root.mkdir(parents=True, exist_ok=True)
    folder = claim_baseline_dir(root, key)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".lock"):  # parallel jobs of a sweep: one baseline run per key
        cached = read_baseline(folder, key)
        if cached is not None:
            return {**score_summary(cached.get("summary") or {}), "path": str(folder), "cached": True}
        log_path = folder / "infer.log"
        log_path.unlink(missing_ok=True)
        run = infer_run(
            cfg, stage_dir=folder, log_path=log_path, cwd=folder, swift_bin=swift_bin, checkpoint=None
        )
        if run["status"] == INTERRUPTED:
            raise KeyboardInterrupt
        score_path = folder / "score.json"
        full = read_json(score_path)
        summary = {**score_summary({k: v for k, v in run.items() if k != "argv"}), **score_summary(full)}
        summary["status"] = run["status"]
        score_path.write_text(
            json.dumps({**full, "key": key, "summary": summary}, indent=2, ensure_ascii=False, default=str)
            + "\n",
            encoding="utf-8",
        )
        return {**summary, "path": str(folder), "cached": False}
