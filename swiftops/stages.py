"""The stages after training: `swift infer` of a checkpoint over a test set (scored), and
`swift export --merge_lora true` of it. Also where a checkpoint is chosen (`ckpt=best|last|PATH`)
and how an existing run is read back (`run=PATH`), so no one types a vN-timestamp folder.

A job folder after `stages=[sft,infer,export]`:

    JOB/run.json            stages.infer / stages.export: status, checkpoint, paths, score
    JOB/infer.log, JOB/export.log
    JOB/infer/result.jsonl  swift's result lines;  JOB/infer/score.json  the score, item by item
    JOB/export/merged/      the merged model (weights, config, tokenizer)
    SWEEP/baseline/         the base model's result and score, once per sweep (JOB/baseline alone)

Stages never raise for swift's failures or for a run they can't use: each outcome becomes the
stage's entry in run.json (`completed`, `failed` with the error, or `skipped` with the reason).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from filelock import FileLock

from swiftops.command import build_export_argv, build_infer_argv, swift_env
from swiftops.installed_swift import installed_swift_version
from swiftops.prepare import has_identity_placeholders, materialize_identity, pair
from swiftops.record import COMPLETED, FAILED, INTERRUPTED, RECORD_NAME, RunRecord, read_record
from swiftops.runfolder import (
    CHECKPOINT_NAME,
    best_checkpoint,
    checkpoints,
    is_run_dir,
    last_checkpoint,
    natural_key,
    newest_run_dir,
    read_json,
    read_lines,
    relocate,
)
from swiftops.runner import log_tail, now_iso, run_swift, status_of
from swiftops.scoring import identity_names, score_rows, score_summary
from swiftops.swift_log import swift_error_line

log = logging.getLogger("swiftops")

SKIPPED = "skipped"
AFTER_TRAINING = ("infer", "export")
DEFAULT_MAX_NEW_TOKENS = 256


class CheckpointError(ValueError):
    """No checkpoint can be chosen. The message names the run and what it holds."""


# ---------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class CheckpointChoice:
    """The checkpoint a stage uses, and why that one."""

    path: Path
    rule: str  # best | last | path
    note: str  # e.g. "lowest eval loss", "no eval loss: fell back to the last checkpoint"


def record_run_dir(record: RunRecord) -> Path | None:
    """The record's swift run folder: run_dir, else the newest vN-* under its output_dir."""
    if record.run_dir and Path(record.run_dir).is_dir():
        return Path(record.run_dir)
    if record.output_dir and Path(record.output_dir).is_dir():
        return newest_run_dir(Path(record.output_dir))
    return None


def folder_listing(path: Path | None, limit: int = 12) -> str:
    if path is None or not path.is_dir():
        return "nothing (the folder does not exist)"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return "nothing (empty)"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def choose_checkpoint(record: RunRecord, ckpt: str) -> CheckpointChoice:
    """`ckpt=best|last|PATH` -> the checkpoint folder, with the rule that picked it.

    best: the lowest eval loss (the record's best_checkpoint, else read from the run folder),
    falling back to last when no eval ran or every eval loss was NaN. last: the record's
    last_checkpoint, else the highest checkpoint-N. Anything else is a path, taken as it is.

    Raises:
        CheckpointError: the path does not exist, or the run has no checkpoint-N folder.
    """
    ckpt = str(ckpt)
    if ckpt not in ("best", "last"):
        path = Path(os.path.expanduser(ckpt))
        if not path.is_dir():
            raise CheckpointError(f"ckpt={ckpt}: no such checkpoint folder; use best, last or a folder")
        return CheckpointChoice(path.resolve(), "path", "given")
    run_dir = record_run_dir(record)
    found = checkpoints(run_dir)
    if not found:
        where = run_dir or record.output_dir or record.job_dir
        raise CheckpointError(
            f"ckpt={ckpt}: the run {where} has no checkpoints (no checkpoint-N folder); it holds: "
            f"{folder_listing(Path(where) if where else None)}. Checkpoints are saved every save_steps "
            "(= eval_steps here): train for at least that many steps, or give ckpt=PATH"
        )
    if ckpt == "best":
        best = relocate(record.best_checkpoint, run_dir) or best_checkpoint(run_dir)
        if best is not None:
            return CheckpointChoice(best.resolve(), "best", "lowest eval loss")
    last = relocate(record.last_checkpoint, run_dir) or found[-1]
    note = "no eval loss: fell back to the last checkpoint" if ckpt == "best" else "last saved"
    return CheckpointChoice(last.resolve(), "last", note)


def resolve_checkpoint(record: RunRecord, ckpt: str) -> Path:
    """`ckpt=best|last|PATH` -> the checkpoint folder (see choose_checkpoint)."""
    return choose_checkpoint(record, ckpt).path


# ---------------------------------------------------------------- existing runs


def load_run(path: str | Path) -> RunRecord:
    """The record of an existing run, for `stages=[infer] run=PATH`.

    PATH may be a swiftops job folder (with run.json), a swift run folder (vN-timestamp), an
    output_dir holding vN-* folders (the newest is taken), or a checkpoint-N folder (its run).
    Without run.json a minimal record is built: status completed, checkpoints read from the run.

    Raises:
        CheckpointError: nothing at PATH is a run.
    """
    path = Path(os.path.expanduser(str(path))).resolve()
    if path.name == RECORD_NAME and path.is_file():
        path = path.parent
    if (path / RECORD_NAME).is_file():
        record = read_record(path)
        if record.run_dir and not Path(record.run_dir).is_dir():
            # the job folder was moved: its run is still in output/ under the same name
            moved = path / "output" / Path(record.run_dir).name
            run_dir = str(moved) if moved.is_dir() else record.run_dir
            record = replace(record, run_dir=run_dir, output_dir=str(path / "output"))
        return record
    if CHECKPOINT_NAME.match(path.name) and path.is_dir():
        path = path.parent
    run_dir = path if is_run_dir(path) else (newest_run_dir(path) if path.is_dir() else None)
    if run_dir is None:
        jobs = sorted((p.parent for p in path.glob(f"*/{RECORD_NAME}")), key=natural_key)
        hint = f" It is a sweep: give one of its jobs, e.g. run={jobs[0]}" if jobs else ""
        raise CheckpointError(
            f"run={path}: neither a swiftops job folder (run.json) nor a swift run folder "
            f"(vN-timestamp with logging.jsonl or checkpoint-N); it holds: {folder_listing(path)}.{hint}"
        )
    best, last = best_checkpoint(run_dir), last_checkpoint(run_dir)
    return RunRecord(
        status=COMPLETED,
        job_dir=str(path),
        argv=[],
        output_dir=str(run_dir.parent),
        run_dir=str(run_dir),
        best_checkpoint=str(best) if best else None,
        last_checkpoint=str(last) if last else None,
    )


# ---------------------------------------------------------------- test data


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


def export_argv(cfg: Mapping[str, Any], *, adapters: str, output_dir: str, swift_bin: str) -> list[str]:
    """`swift export --merge_lora true` as the export stage runs it: the export section's args."""
    return build_export_argv(
        adapters=adapters,
        output_dir=output_dir,
        swift_bin=swift_bin,
        extra=(cfg.get("export") or {}).get("args"),
        version=installed_swift_version(swift_bin),
    )


def resolve_test_set(cfg: Mapping[str, Any], out_dir: Path) -> str:
    """The test set for swift infer. A local self-cognition file with {{NAME}}/{{AUTHOR}} gets
    a filled copy in out_dir (as the training data does), so references name the model."""
    test = str(cfg["data"]["test_dataset"])
    local = Path(os.path.expanduser(test))
    name, author = pair(cfg["data"].get("model_name")), pair(cfg["data"].get("model_author"))
    if (name or author) and local.is_file() and has_identity_placeholders(local):
        return str(materialize_identity(local, out_dir / "data", name, author))
    return test


# ---------------------------------------------------------------- stages


def run_stage(
    stage: str, cfg: Mapping[str, Any], record: RunRecord, *, job_dir: Path, swift_bin: str, ckpt: str
) -> dict[str, Any]:
    """One stage after training (infer or export) on the record's run: its run.json entry
    (`completed`, `failed` with the error, `interrupted`, or `skipped` with the reason)."""
    reason = skip_reason(record, ckpt)
    if reason:
        return {"status": SKIPPED, "reason": reason}
    if stage == "infer":
        return infer_stage(cfg, record, job_dir, swift_bin, ckpt)
    return export_stage(cfg, record, job_dir, swift_bin, ckpt)


def skip_reason(record: RunRecord, ckpt: str) -> str | None:
    if record.status == COMPLETED:
        return None
    stopped = [n for n in AFTER_TRAINING if record.stages.get(n, {}).get("status") == INTERRUPTED]
    if record.status == INTERRUPTED and stopped:
        return "an earlier stage was interrupted"
    if ckpt not in ("best", "last"):
        return None  # an explicit checkpoint folder: the user chose it knowing the run's state
    return f"the training run is {record.status}, so it has no checkpoint to trust (give ckpt=PATH to force)"


def stage_error_line(entry: Mapping[str, Any]) -> str | None:
    """A failed stage's error as one line: swift's exception and where (swiftops.swift_log), else the
    error's last line (a reason of ours: no result lines, no model written)."""
    error = str(entry.get("error") or "").strip()
    return (swift_error_line(error) or error.splitlines()[-1]) if error else None


def stage_line(entry: Mapping[str, Any]) -> str:
    """'completed: score 45.0 (exam, 10 rows), checkpoint-20' for the console."""
    status = entry.get("status")
    if status == SKIPPED:
        return f"skipped: {entry.get('reason')}"
    if status != COMPLETED:
        return f"{status}: {stage_error_line(entry) or 'see the stage log'}"
    parts = [str(status)]
    if "score" in entry:
        score = entry.get("score")
        shown = f"{score:g}/100" if isinstance(score, int | float) else "not scored"
        parts.append(f"score {shown} ({entry.get('scorer') or 'no scorer'}, {entry.get('n')} rows)")
        base = (entry.get("baseline") or {}).get("score")
        if isinstance(base, int | float):
            parts.append(f"base model {base:g}/100")
    if entry.get("output_dir"):
        parts.append(str(entry["output_dir"]))
    if entry.get("checkpoint"):
        parts.append(f"from {Path(entry['checkpoint']).name} ({entry.get('checkpoint_rule')})")
    return ", ".join(parts)


def _start(record: RunRecord, ckpt: str) -> tuple[dict[str, Any], CheckpointChoice | None]:
    entry: dict[str, Any] = {"status": FAILED, "ckpt": ckpt, "started": now_iso()}
    try:
        choice = choose_checkpoint(record, ckpt)
    except CheckpointError as exc:
        entry["error"] = str(exc)
        return entry, None
    entry.update(checkpoint=str(choice.path), checkpoint_rule=choice.rule, checkpoint_note=choice.note)
    return entry, choice


def _finish(entry: dict[str, Any], outcome, log_path: Path) -> None:
    entry.update(
        status=status_of(outcome),
        exit_code=outcome.exit_code,
        duration_s=outcome.duration_s,
        log_path=str(log_path),
    )
    if entry["status"] != COMPLETED:
        entry["error"] = log_tail(log_path)


def is_adapter(checkpoint: Path) -> bool:
    return (checkpoint / "adapter_config.json").is_file()


def infer_stage(
    cfg: Mapping[str, Any], record: RunRecord, job_dir: Path, swift_bin: str, ckpt: str
) -> dict[str, Any]:
    """swift infer of the chosen checkpoint over data.test_dataset, scored, with the baseline."""
    entry, choice = _start(record, ckpt)
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
    _finish(entry, outcome, log_path)
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


def export_stage(
    cfg: Mapping[str, Any], record: RunRecord, job_dir: Path, swift_bin: str, ckpt: str
) -> dict[str, Any]:
    """swift export --merge_lora true of the chosen checkpoint into job_dir/export/merged."""
    entry, choice = _start(record, ckpt)
    if choice is None:
        return entry
    if not is_adapter(choice.path):
        return {
            "status": SKIPPED,
            "reason": f"{choice.path} is a whole model (full-parameter training), not a LoRA to merge",
            "checkpoint": str(choice.path),
        }
    output_dir = job_dir / "export" / "merged"
    # swift export skips the merge when its output folder exists (even with --exist_ok true, even
    # half-written), so a re-run would keep the old weights: merge into a fresh folder, then swap
    staging = job_dir / "export" / "merged.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    log_path = job_dir / "export.log"
    argv = export_argv(cfg, adapters=str(choice.path), output_dir=str(staging), swift_bin=swift_bin)
    entry.update(argv=argv, output_dir=str(output_dir))
    log.info("launching swift export in %s", staging.parent)
    outcome = run_swift(argv, env=swift_env(cfg, os.environ), log_path=log_path, cwd=job_dir)
    _finish(entry, outcome, log_path)
    if entry["status"] == COMPLETED and not is_model_folder(staging):
        entry.update(
            status=FAILED,
            error=f"swift export exited 0 but wrote no model: {staging} holds {folder_listing(staging)}",
        )
    if entry["status"] == COMPLETED:
        shutil.rmtree(output_dir, ignore_errors=True)
        staging.rename(output_dir)
    else:  # a failed or stopped merge leaves the previous merged model as it was
        shutil.rmtree(staging, ignore_errors=True)
    return entry


def is_model_folder(path: Path) -> bool:
    """config.json plus weights (safetensors or bin, whole or sharded)."""
    weights = [*path.glob("*.safetensors"), *path.glob("*.bin")] if path.is_dir() else []
    return (path / "config.json").is_file() and bool(weights)


# ---------------------------------------------------------------- baseline


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


def stage_failures(record: RunRecord) -> list[str]:
    """'infer failed: ...' for each stage that failed, for a command's exit message and status."""
    problems = []
    for name, entry in record.stages.items():
        if name in AFTER_TRAINING and entry.get("status") == FAILED:
            problems.append(f"{name} failed: {stage_error_line(entry) or 'see ' + name + '.log'}")
    return problems


def print_failures(record: RunRecord, stream=None) -> int:
    """Print each failed stage on stderr; 1 if any failed, else 0 (for the standalone CLI)."""
    problems = stage_failures(record)
    for problem in problems:
        print(f"swiftops: {problem}", file=stream or sys.stderr, flush=True)
    return 1 if problems else 0
