"""swift's error line from swift.log: the last traceback's exception and the innermost frame of
swift's own code, never a line of source."""

from __future__ import annotations

from swiftops.summary import console_why
from swiftops.swift_log import last_traceback, swift_error_line, swift_file

SITE = "/venv/lib/python3.11/site-packages"


def frame(path: str, function: str, source: str, marker: bool = True) -> str:
    text = f'  File "{path}", line 12, in {function}\n    {source}\n'
    return text + ("    " + "^" * len(source) + "\n" if marker else "")


# what ms-swift 4.6 printed for an empty .jsonl (abridged: the same frames, fewer of them)
EMPTY_DATASET_LOG = (
    "[INFO:swift] Downloading the dataset from ModelScope, dataset_id: /data/empty.jsonl\n"
    "Traceback (most recent call last):\n"
    + frame(f"{SITE}/swift/cli/sft.py", "<module>", "sft_main()", marker=False)
    + frame(f"{SITE}/swift/pipelines/base.py", "main", "result = self.run()")
    + frame(f"{SITE}/swift/dataset/loader.py", "load", "dataset = self._load_dataset_path(")
    + frame(f"{SITE}/swift/dataset/loader.py", "_load_dataset_path", "dataset = hf_load_dataset(file_type)")
    + frame(f"{SITE}/datasets/load.py", "load_dataset", "builder_instance.download_and_prepare(", False)
    + frame(f"{SITE}/datasets/packaged_modules/json/json.py", "_split_generators", "pa_table = next(iter(x))")
    + "StopIteration\n"
)


def test_a_stop_iteration_names_the_exception_and_swift_s_innermost_frame():
    assert (
        swift_error_line(EMPTY_DATASET_LOG)
        == "StopIteration (in swift/dataset/loader.py: _load_dataset_path)"
    )
    error = last_traceback(EMPTY_DATASET_LOG)
    assert (error.exception, error.swift_file, error.function) == (
        "StopIteration",
        "swift/dataset/loader.py",
        "_load_dataset_path",
    )


def test_a_tail_that_cut_the_traceback_s_header_off_still_gives_the_line():
    tail = "\n".join(EMPTY_DATASET_LOG.splitlines()[8:])  # starts among the frames
    assert "Traceback" not in tail
    assert swift_error_line(tail) == "StopIteration (in swift/dataset/loader.py: _load_dataset_path)"


def test_a_chained_exception_gives_the_last_one_printed():
    """transformers' KeyError raised from a KeyError (the bad metric_for_best_model): the first
    traceback has no swift frame, the second ends in transformers, under swift's trainer."""
    log = (
        "Traceback (most recent call last):\n"
        + frame(f"{SITE}/transformers/trainer.py", "_determine_best_metric", "metric_value = metrics[m]")
        + "KeyError: 'eval_nosuch'\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "Traceback (most recent call last):\n"
        + frame(f"{SITE}/swift/cli/sft.py", "<module>", "sft_main()", marker=False)
        + frame(f"{SITE}/swift/trainers/mixin.py", "_maybe_log_save_evaluate", "super()._maybe_log(tr_loss)")
        + frame(f"{SITE}/transformers/trainer.py", "_maybe_log_save_evaluate", "x = self._determine(m)")
        + frame(f"{SITE}/transformers/trainer.py", "_determine_best_metric", "raise KeyError(", False)
        + "KeyError: \"The `metric_for_best_model` training argument is set to 'eval_nosuch'\"\n"
        "Train:  42%|####      | 5/12 [00:02<00:03,  1.92it/s]\n"  # a progress bar after it
    )
    assert swift_error_line(log) == (
        "KeyError: \"The `metric_for_best_model` training argument is set to 'eval_nosuch'\" "
        "(in swift/trainers/mixin.py: _maybe_log_save_evaluate)"
    )


def test_during_handling_chains_and_keyboard_interrupt():
    log = (
        "Traceback (most recent call last):\n"
        + frame(f"{SITE}/swift/trainers/mixin.py", "train", "res = super().train()")
        + "ValueError: first\n\nDuring handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n"
        + frame(f"{SITE}/swift/pipelines/train/sft.py", "train", "trainer.train(resume_checkpoint)", False)
        + frame(f"{SITE}/torch/nn/modules/module.py", "_call_impl", "return forward_call(*args)")
        + "KeyboardInterrupt\n"
    )
    assert swift_error_line(log) == "KeyboardInterrupt (in swift/pipelines/train/sft.py: train)"


def test_torchrun_rank_prefixes_and_progress_redraws_are_read_through():
    log = (
        "[rank0]: Traceback (most recent call last):\n"
        + "".join(
            f"[rank0]: {line}\n"
            for line in frame(f"{SITE}/swift/model/model_meta.py", "f", "raise X").splitlines()
        )
        + "Train: 10%\r[rank0]: ValueError: model_type: 'nosuch' not in ['qwen2']\n"
    )
    assert (
        swift_error_line(log)
        == "ValueError: model_type: 'nosuch' not in ['qwen2'] (in swift/model/model_meta.py: f)"
    )


def test_no_swift_frame_no_traceback_no_exception():
    only_torch = (
        "Traceback (most recent call last):\n"
        + frame(f"{SITE}/torch/x.py", "f", "y()")
        + "RuntimeError: boom\n"
    )
    assert swift_error_line(only_torch) == "RuntimeError: boom"
    assert (
        swift_error_line("torch.OutOfMemoryError: CUDA out of memory.\n")
        == "torch.OutOfMemoryError: CUDA out of memory."
    )
    assert swift_error_line("[INFO:swift] training...\nKilled\n") is None
    assert swift_error_line("") is None


def test_a_source_line_is_never_the_error_line():
    """What the table showed before: the last line of the tail that looked like anything."""
    line = swift_error_line(EMPTY_DATASET_LOG)
    assert "self.run()" not in line and "^^^" not in line and "hf_load_dataset" not in line


def test_which_files_are_swift_s():
    assert swift_file(f"{SITE}/swift/dataset/loader.py") == "swift/dataset/loader.py"
    assert swift_file("/src/ms-swift/swift/llm/train.py") == "swift/llm/train.py"  # an editable install
    assert swift_file(f"{SITE}/transformers/trainer.py") is None
    assert swift_file(f"/home/swift{SITE}/datasets/load.py") is None  # a user named swift


def test_the_console_keeps_the_frame_and_shortens_the_message():
    why = "KeyError: " + "x" * 200 + " (in swift/trainers/mixin.py: _maybe_log_save_evaluate)"
    shown = console_why(why)
    assert shown.startswith("KeyError") and shown.endswith(
        "(in swift/trainers/mixin.py: _maybe_log_save_evaluate)"
    )
    assert len(shown) < 80 and "..." in shown
    assert console_why("short") == "short"
    assert console_why("a" * 100) == "a" * 67 + "..."
