"""swiftops.curves on REAL files: event files from tensorboard's own writer, ms-swift's
logging.jsonl, HF's trainer_state.json, and every folder form a run can be handed in."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from helpers_events import (
    RUN_NAME,
    make_run,
    steps_of,
    write_events,
    write_jsonl,
    write_raw_events,
    write_trainer_state,
)

from swiftops.curves import read_curves, read_run_dir
from swiftops.runfolder import NoRunFound, find_run_dirs


def f32(values) -> np.ndarray:
    """What a float looks like after a trip through simple_value (float32)."""
    return np.asarray(values, dtype=np.float32).astype(np.float64)


def test_reads_every_point_of_a_25k_step_run(tmp_path):
    steps = steps_of(25_000)
    loss = [2.0 + math.sin(s / 300) for s in steps]
    evals = steps_of(25_000, every=250)
    run = tmp_path / RUN_NAME
    write_events(run / "runs", {"train/loss": (steps, loss), "eval/loss": (evals, [1.0] * len(evals))})

    curves = read_curves(run)

    assert curves.source == "tensorboard" and curves.warnings == []
    assert len(curves.train_loss) == 25_000  # nothing thinned (EventAccumulator keeps 10k by default)
    assert np.array_equal(curves.train_loss.steps, steps)
    assert np.array_equal(curves.train_loss.values, f32(loss))
    assert curves.train_loss.steps.dtype == np.int64 and curves.train_loss.values.dtype == np.float64
    assert len(curves.eval_loss) == 100


def test_matches_event_accumulator_on_odd_steps_and_tags(tmp_path):
    """Step 0 (no step field at all), multi-byte varints, a long tag (past the fast path),
    unicode, NaN and inf: the same points as TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    steps = [0, 1, 127, 128, 300, 16_384, 2**21 + 5, 2**35 + 1]
    long_tag = "train/" + "x" * 200
    scalars = {
        "train/loss": (steps, [3.0, 2.5, float("nan"), float("inf"), 1.0, 0.5, 0.25, 0.125]),
        long_tag: (steps, [float(i) for i in range(len(steps))]),
        "eval/päckchen": (steps[:3], [1.0, 2.0, 3.0]),
    }
    logdir = tmp_path / RUN_NAME / "runs"
    write_events(logdir, scalars)

    curves = read_curves(tmp_path / RUN_NAME)
    acc = EventAccumulator(str(logdir), size_guidance={SCALARS: 0})
    acc.Reload()

    assert sorted(curves.scalars) == sorted(acc.Tags()["scalars"])
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        assert curves.scalars[tag].steps.tolist() == [e.step for e in events]
        np.testing.assert_array_equal(curves.scalars[tag].values, [e.value for e in events])


def test_merges_event_files_later_file_wins_on_repeated_steps(tmp_path):
    """A resumed run: the second file repeats steps 6-10 with new values and goes on to 15."""
    logdir = tmp_path / RUN_NAME / "runs"
    write_events(logdir, {"train/loss": (steps_of(10), [10.0 + s for s in steps_of(10)])})
    write_events(logdir, {"train/loss": (list(range(6, 16)), [20.0 + s for s in range(6, 16)])})

    loss = read_curves(tmp_path / RUN_NAME).train_loss

    assert loss.steps.tolist() == list(range(1, 16))
    assert loss.values.tolist() == [11, 12, 13, 14, 15] + [20.0 + s for s in range(6, 16)]


def test_a_repeated_step_within_one_file_keeps_the_later_point(tmp_path):
    """ms-swift logs train/epoch again at each eval, at the same step."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    def event(step, value):
        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag="train/epoch", simple_value=value)]
        )
        return event_pb2.Event(wall_time=1.0, step=step, summary=summary)

    write_raw_events(
        tmp_path / RUN_NAME / "runs", [event(1, 0.1), event(2, 0.2), event(2, 0.25), event(3, 0.3)]
    )

    epoch = read_curves(tmp_path / RUN_NAME).scalars["train/epoch"]

    assert epoch.steps.tolist() == [1, 2, 3]
    assert epoch.values.tolist() == pytest.approx([0.1, 0.25, 0.3])


@pytest.mark.parametrize("cut", [1, 4, 5, 13, 20])
def test_a_cut_tail_reads_up_to_the_last_whole_record_with_a_warning(tmp_path, cut):
    path = write_events(tmp_path / RUN_NAME / "runs", {"train/loss": (steps_of(50), [1.0] * 50)})
    data = path.read_bytes()
    path.write_bytes(data[:-cut])  # the last record loses its crc, data or header

    curves = read_curves(tmp_path / RUN_NAME)

    assert curves.train_loss.steps.tolist() == steps_of(49)
    assert len(curves.warnings) == 1 and "not a whole record" in curves.warnings[0]
    assert path.name in curves.warnings[0]


def test_garbage_after_the_last_record_is_a_warning_not_an_exception(tmp_path):
    path = write_events(tmp_path / RUN_NAME / "runs", {"train/loss": (steps_of(20), [1.0] * 20)})
    rng = np.random.default_rng(0)
    path.write_bytes(path.read_bytes() + bytes([0xFF] * 8) + rng.bytes(300))

    curves = read_curves(tmp_path / RUN_NAME)

    assert curves.train_loss.steps.tolist() == steps_of(20)
    assert curves.warnings


def test_an_empty_event_file_reads_as_no_points(tmp_path):
    run = tmp_path / RUN_NAME
    (run / "runs").mkdir(parents=True)
    (run / "runs" / "events.out.tfevents.1.host.1.0").write_bytes(b"")

    curves = read_curves(run)

    assert curves.scalars == {} and curves.source == "none" and curves.warnings


def test_tensor_style_scalars_are_read_and_other_plugins_ignored(tmp_path):
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

    logdir = tmp_path / RUN_NAME / "runs"
    write_events(logdir, {"train/loss": ([1, 2, 3], [3.0, 2.0, float("nan")])}, tensor_style=True)
    text = summary_pb2.Summary.Value(
        tag="args",
        tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"{}"]),
        metadata=summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text")
        ),
    )
    double = summary_pb2.Summary.Value(
        tag="eval/loss", tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, double_val=[1.5])
    )
    write_raw_events(
        logdir,
        [
            event_pb2.Event(step=1, wall_time=2e9, summary=summary_pb2.Summary(value=[text])),
            event_pb2.Event(step=3, wall_time=2e9, summary=summary_pb2.Summary(value=[double])),
        ],
    )

    curves = read_curves(tmp_path / RUN_NAME)

    assert sorted(curves.scalars) == ["eval/loss", "train/loss"]
    assert curves.train_loss.values[:2].tolist() == [3.0, 2.0] and math.isnan(curves.train_loss.values[2])
    assert curves.eval_loss.values.tolist() == [1.5]


def test_a_long_text_record_before_the_scalars_is_framed_exactly(tmp_path):
    """HF writes its args as a text summary (KBs) before the first scalar."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    big = summary_pb2.Summary.Value(tag="args", simple_value=0.0)
    big.metadata.summary_description = "x" * 5000
    logdir = tmp_path / RUN_NAME / "runs"
    write_raw_events(
        logdir, [event_pb2.Event(step=0, wall_time=1.0, summary=summary_pb2.Summary(value=[big]))]
    )
    write_events(logdir, {"train/loss": (steps_of(100), [2.0] * 100)})

    curves = read_curves(tmp_path / RUN_NAME)

    assert len(curves.train_loss) == 100 and curves.warnings == []


def test_nan_loss_logged_as_zero_is_read_as_nan(tmp_path):
    """ms-swift's logging_nan_inf_filter logs a NaN loss as 0.0; grad_norm still shows NaN."""
    nan = float("nan")
    run = tmp_path / RUN_NAME
    write_events(
        run / "runs",
        {
            "train/loss": ([1, 2, 3, 4], [2.0, 1.5, 0.0, 0.0]),
            "train/grad_norm": ([1, 2, 3, 4], [1.0, 1.0, nan, nan]),
        },
    )

    curves = read_curves(run)

    assert curves.train_loss.values[:2].tolist() == [2.0, 1.5]
    assert np.isnan(curves.train_loss.values[2:]).all()
    assert any("logged as 0.0" in w and "3, 4" in w for w in curves.warnings)


def test_a_real_zero_loss_with_a_finite_grad_norm_stays_zero(tmp_path):
    run = tmp_path / RUN_NAME
    write_events(run / "runs", {"train/loss": ([1, 2], [1.0, 0.0]), "train/grad_norm": ([1, 2], [1.0, 0.5])})

    assert read_curves(run).train_loss.values.tolist() == [1.0, 0.0]


# ---- logging.jsonl and trainer_state.json ----


def test_jsonl_is_the_fallback_with_bare_nan_and_a_killed_run(tmp_path):
    run = tmp_path / RUN_NAME
    path = write_jsonl(
        run,
        ([1, 5, 10, 15], [2.0, 1.8, float("nan"), float("inf")]),
        ([10], [1.9]),
        max_steps=30,
        cut_last_line=True,
    )
    assert "NaN" in path.read_text() and "Infinity" in path.read_text()

    curves = read_curves(run)

    assert curves.source == "logging.jsonl"
    assert curves.train_loss.steps.tolist() == [1, 5, 10]  # the cut line (step 15) is lost
    assert curves.train_loss.values[:2].tolist() == [2.0, 1.8] and math.isnan(curves.train_loss.values[2])
    assert curves.eval_loss.steps.tolist() == [10] and curves.eval_loss.values.tolist() == [1.9]
    assert curves.max_steps == 30
    assert "train/epoch" in curves.scalars and curves.best_checkpoint is None
    assert any("cut short" in w for w in curves.warnings)


def test_jsonl_gives_checkpoints_and_cross_checks_the_event_files(tmp_path):
    run = make_run(tmp_path, (steps_of(10), [2.0 - s / 10 for s in steps_of(10)]))
    best, last = run / "checkpoint-5", run / "checkpoint-10"
    best.mkdir()
    last.mkdir()
    write_jsonl(
        run,
        (steps_of(12), [1.0] * 12),
        max_steps=12,
        summary={"last_model_checkpoint": str(last), "best_model_checkpoint": str(best), "global_step": 12},
    )

    curves = read_curves(run)

    assert curves.source == "tensorboard"
    # the event files' 10 points, then the log's steps 11 and 12 (event files cut short)
    assert list(curves.train_loss.steps) == steps_of(12)
    assert np.allclose(curves.train_loss.values, f32([2.0 - s / 10 for s in steps_of(10)] + [1.0, 1.0]))
    assert curves.best_checkpoint == str(best) and curves.last_checkpoint == str(last)
    assert curves.max_steps == 12
    assert any("stop at step 10" in w and "step 12" in w for w in curves.warnings)


def test_checkpoints_logged_elsewhere_are_found_in_a_moved_run_folder(tmp_path):
    run = make_run(tmp_path, ([1, 2], [2.0, 1.0]))
    (run / "checkpoint-2").mkdir()
    write_jsonl(
        run,
        ([1, 2], [2.0, 1.0]),
        max_steps=2,
        summary={
            "best_model_checkpoint": "/gone/v0/checkpoint-2",
            "last_model_checkpoint": "/gone/v0/checkpoint-2",
        },
    )

    curves = read_curves(run)

    assert curves.best_checkpoint == str(run / "checkpoint-2")


def test_last_checkpoint_without_jsonl_is_the_highest_checkpoint_folder(tmp_path):
    run = make_run(tmp_path, ([1, 2], [2.0, 1.0]))
    for step in (5, 10, 100):
        (run / f"checkpoint-{step}").mkdir()

    assert read_curves(run).last_checkpoint == str(run / "checkpoint-100")


def test_top_level_trainer_state_of_any_hf_trainer(tmp_path):
    out = tmp_path / "llamafactory_out"
    write_trainer_state(
        out / "trainer_state.json",
        ([10, 20, 30], [2.0, 1.5, 1.2]),
        ([15, 30], [1.9, 1.6]),
        max_steps=30,
        best_model_checkpoint=str(out / "checkpoint-30"),
    )

    curves = read_curves(out)

    assert curves.source == "trainer_state.json"
    assert curves.train_loss.steps.tolist() == [10, 20, 30]
    assert curves.eval_loss.values.tolist() == [1.9, 1.6]
    assert curves.max_steps == 30 and curves.best_checkpoint == str(out / "checkpoint-30")
    assert "train/train_runtime" not in curves.scalars


def test_trainer_state_of_the_latest_checkpoint(tmp_path):
    out = tmp_path / "hf_out"
    write_trainer_state(out / "checkpoint-9" / "trainer_state.json", ([5], [2.0]), max_steps=20)
    write_trainer_state(
        out / "checkpoint-20" / "trainer_state.json", ([5, 10, 20], [2.0, 1.0, 0.5]), max_steps=20
    )

    assert find_run_dirs(tmp_path) == [out]  # checkpoint folders are not runs of their own
    assert read_curves(out).train_loss.steps.tolist() == [5, 10, 20]


# ---- where runs are ----


def test_a_run_folder_its_output_folder_and_a_hydra_job_folder(tmp_path):
    job = tmp_path / "job"
    (job / "run.json").parent.mkdir(parents=True)
    (job / "run.json").write_text("{}")
    old = make_run(job / "output", ([1, 2], [2.0, 1.0]), name="v0-20250101-120000")
    new = make_run(job / "output", ([1, 2, 3], [2.0, 1.0, 0.5]), name="v1-20250101-130000")

    assert find_run_dirs(old) == [old]
    assert find_run_dirs(job / "output") == [old, new]
    assert find_run_dirs(job) == [old, new]
    for path in (job, job / "output"):
        assert read_curves(path).run_dir == new  # the newest of sibling runs
    assert read_curves(old).run_dir == old


def test_a_sweep_folder_in_job_order(tmp_path):
    runs = [make_run(tmp_path / "sweep" / str(n) / "output", ([1, 2], [2.0, 1.0])) for n in (0, 1, 2, 10, 9)]

    found = find_run_dirs(tmp_path / "sweep")

    assert found == sorted(runs, key=lambda p: int(p.parent.parent.name))
    with pytest.raises(ValueError, match="holds 5 runs"):
        read_curves(tmp_path / "sweep")


def test_a_run_that_died_before_its_first_log_is_still_a_run(tmp_path):
    run = tmp_path / "output" / "v3-20250101-120000"
    run.mkdir(parents=True)
    (run / "args.json").write_text("{}")

    curves = read_curves(tmp_path / "output")

    assert curves.run_dir == run and curves.scalars == {} and curves.source == "none"


def test_a_missing_path_and_an_empty_folder_name_the_path(tmp_path):
    with pytest.raises(NoRunFound, match="nowhere"):
        find_run_dirs(tmp_path / "nowhere")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(NoRunFound, match="empty"):
        read_curves(tmp_path / "empty")


def test_read_run_dir_reads_an_add_version_false_output_folder(tmp_path):
    out = tmp_path / "out"
    write_events(out / "runs", {"train/loss": ([1, 2], [2.0, 1.0])})
    (out / "logging.jsonl").write_text(json.dumps({"loss": 2.0, "global_step/max_steps": "1/2"}) + "\n")

    assert read_run_dir(out).train_loss.values.tolist() == [2.0, 1.0]
    assert read_curves(out).max_steps == 2


def test_reading_needs_no_heavy_import():
    """curves and diagnosis load numpy only; tensorboard's protobufs come when a file is read."""
    code = (
        "import sys\n"
        "import swiftops.curves, swiftops.diagnosis, swiftops.classify\n"
        "heavy = ('tensorboard', 'torch', 'swift', 'pandas', 'google.protobuf')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == ""


def test_several_values_in_one_event_are_all_read(tmp_path):
    """TF1-style merged summaries: one event, several tags."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    def event(step):
        values = [
            summary_pb2.Summary.Value(tag="train/loss", simple_value=1.0 / step),
            summary_pb2.Summary.Value(tag="train/grad_norm", simple_value=float(step)),
        ]
        return event_pb2.Event(wall_time=1.0, step=step, summary=summary_pb2.Summary(value=values))

    write_raw_events(tmp_path / RUN_NAME / "runs", [event(s) for s in (1, 2, 4)])

    curves = read_curves(tmp_path / RUN_NAME)

    assert curves.train_loss.values.tolist() == [1.0, 0.5, 0.25]
    assert curves.scalars["train/grad_norm"].steps.tolist() == [1, 2, 4]
