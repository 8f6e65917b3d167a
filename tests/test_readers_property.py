"""Property tests of the curve readers (hypothesis): whatever bytes an event file or a
logging.jsonl holds, reading never raises, and every point it returns was written.

Event files go through swiftops.tfevents.parse_event_bytes, logs through the public
swiftops.curves.read_curves on a folder holding only a logging.jsonl."""

from __future__ import annotations

import json
import math
import string
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from helpers_events import write_events, write_jsonl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from swiftops import tfevents
from swiftops.curves import Curves, read_curves
from swiftops.tfevents import parse_event_bytes

PROPERTY = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


def key(tag: str, step: int, value: float) -> tuple[str, int, float | str]:
    """A point as a hashable key that NaN compares equal in."""
    return (tag, int(step), "nan" if math.isnan(value) else float(value))


# ---------------------------------------------------------------------------------------------
# event files

TAGS = ("train/loss", "train/grad_norm", "eval/loss")
FLOAT32 = st.floats(width=32)  # NaN and inf included: ms-swift logs them; simple_value is a float32


@st.composite
def event_scalars(draw) -> dict[str, tuple[list[int], list[float]]]:
    tags = draw(st.lists(st.sampled_from(TAGS), min_size=1, max_size=3, unique=True))
    out = {}
    for tag in tags:
        steps = draw(st.lists(st.integers(0, 2**40), min_size=1, max_size=8, unique=True))
        out[tag] = (sorted(steps), draw(st.lists(FLOAT32, min_size=len(steps), max_size=len(steps))))
    return out


def event_file(scalars, tensor_style: bool) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return write_events(Path(folder), scalars, tensor_style=tensor_style).read_bytes()


def written_points(scalars) -> Counter:
    return Counter(
        key(tag, s, v) for tag, (steps, values) in scalars.items() for s, v in zip(steps, values, strict=True)
    )


def read_points(data: bytes) -> tuple[list[tuple], list[str]]:
    """The points in record order, after checking the arrays agree."""
    got, warned = parse_event_bytes(data, "events.prop")
    assert len(got.tag_ids) == len(got.steps) == len(got.values)
    assert got.tag_ids.dtype == np.int64 and got.steps.dtype == np.int64 and got.values.dtype == np.float64
    tags = got.tags
    points = [
        key(tags[t], s, v)
        for t, s, v in zip(got.tag_ids.tolist(), got.steps.tolist(), got.values.tolist(), strict=True)
    ]
    return points, warned


def record_ends(data: bytes) -> list[int]:
    ends, pos = [], 0
    while pos + 16 <= len(data):
        pos += 16 + int.from_bytes(data[pos : pos + 8], "little")
        ends.append(pos)
    return ends


@PROPERTY
@given(st.one_of(st.binary(max_size=3000), st.binary(min_size=12, max_size=64).map(lambda b: b * 40)))
@example(b"")
@example(bytes(64))
def test_event_bytes_of_any_kind_never_raise_and_hold_no_point(data):
    """No CRC check passes on bytes no writer framed (short of a 2**-64 accident)."""
    points, warned = read_points(data)

    assert points == []
    assert bool(warned) == bool(data)


@PROPERTY
@given(scalars=event_scalars(), tensor_style=st.booleans(), where=st.floats(0, 1))
def test_a_cut_event_file_reads_exactly_the_whole_records_before_the_cut(scalars, tensor_style, where):
    data = event_file(scalars, tensor_style)
    cut = round(where * len(data))
    full, _ = read_points(data)
    assert Counter(full) == written_points(scalars)

    points, warned = read_points(data[:cut])

    whole = sum(end <= cut for end in record_ends(data)[1:])  # record 0 is the file_version event
    assert points == full[:whole]
    assert bool(warned) == (cut not in (0, *record_ends(data)))


@PROPERTY
@given(
    scalars=event_scalars(),
    tensor_style=st.booleans(),
    flips=st.lists(st.floats(0, 1), min_size=1, max_size=3),
    block_bytes=st.sampled_from([40, 200, tfevents._CRC_BLOCK_BYTES]),  # CRC blocks of ~1, ~4, all records
)
def test_flipped_bits_cost_at_most_a_point_each_and_never_make_one(scalars, tensor_style, flips, block_bytes):
    data = event_file(scalars, tensor_style)
    out = bytearray(data)
    bits = {min(int(f * len(data) * 8), len(data) * 8 - 1) for f in flips}
    for bit in bits:
        out[bit // 8] ^= 1 << (bit % 8)

    with mock.patch.object(tfevents, "_CRC_BLOCK_BYTES", block_bytes):
        points, warned = read_points(bytes(out))

    written = written_points(scalars)
    assert not Counter(points) - written  # nothing that was not written, nothing twice
    assert sum(written.values()) - len(points) <= len(bits)
    assert warned


@PROPERTY
@given(scalars=event_scalars(), garbage=st.binary(min_size=1, max_size=300), where=st.floats(0, 1))
def test_garbage_spliced_into_an_event_file_costs_at_most_the_record_it_lands_in(scalars, garbage, where):
    data = event_file(scalars, tensor_style=False)
    at = round(where * len(data))

    points, warned = read_points(data[:at] + garbage + data[at:])

    written = written_points(scalars)
    assert not Counter(points) - written
    assert sum(written.values()) - len(points) <= 1
    assert warned


# ---------------------------------------------------------------------------------------------
# logging.jsonl, through read_curves


def read_log(data: bytes) -> Curves:
    """read_curves on a folder holding only a logging.jsonl of these bytes: a run folder, so
    never NoRunFound."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "logging.jsonl").write_bytes(data)
        curves = read_curves(folder)
    for series in curves.scalars.values():
        assert series.steps.dtype == np.int64 and series.values.dtype == np.float64
        assert len(series.steps) == len(series.values)
        assert np.all(np.diff(series.steps) > 0)
    return curves


def log_points(curves: Curves) -> dict[str, set]:
    return {
        tag: {key(tag, s, v) for s, v in zip(series.steps.tolist(), series.values.tolist(), strict=True)}
        for tag, series in curves.scalars.items()
    }


FINITE = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def swift_log(draw, losses=FINITE) -> tuple[bytes, dict]:
    """A logging.jsonl as ms-swift writes it (tests/helpers_events.write_jsonl), and what it holds:
    train/loss and eval/loss by step."""
    steps = draw(st.lists(st.integers(1, 10_000), min_size=1, max_size=12, unique=True))
    steps.sort()
    loss = draw(st.lists(losses, min_size=len(steps), max_size=len(steps)))
    eval_steps = draw(st.lists(st.sampled_from(steps), unique=True, max_size=3))
    eval_steps.sort()
    evals = (eval_steps, draw(st.lists(losses, min_size=len(eval_steps), max_size=len(eval_steps))))
    summary = {"last_model_checkpoint": f"/gone/checkpoint-{steps[-1]}", "best_model_checkpoint": None}
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the summary's nanmean of all-NaN or huge losses
        path = write_jsonl(
            Path(folder),
            (steps, loss),
            evals if eval_steps else None,
            max_steps=steps[-1] + draw(st.integers(0, 100)),
            summary=summary if draw(st.booleans()) else None,
        )
        data = path.read_bytes()
    held = {"train/loss": dict(zip(steps, loss, strict=True)), "eval/loss": dict(zip(*evals, strict=True))}
    return data, held


def assert_holds(curves: Curves, held: dict) -> None:
    for tag, points in held.items():
        series = curves.scalars.get(tag)
        got = dict(zip(series.steps.tolist(), series.values.tolist(), strict=True)) if series else {}
        assert got.keys() == points.keys()
        for step, value in points.items():
            assert got[step] == value or (math.isnan(got[step]) and math.isnan(value)), (tag, step)


# bytes that look like log lines more often than random bytes do
LOG_TOKENS = [
    *b'{ } [ ] : , "loss" "eval_loss" "global_step/max_steps" "3/40" "/" 1.5 -2 1e308 0 null true'.split(),
    *b'NaN Infinity -Infinity " \\ \xff \xc3 \xe2\x80\xa8'.split(),
    *(b" ", b"\n", b"\r", b"\x00", b"9" * 30),
]
JSONISH = st.lists(st.sampled_from(LOG_TOKENS), max_size=80).map(b"".join)


@PROPERTY
@given(st.one_of(st.binary(max_size=2000), JSONISH))
@example(b"\xff\xfe\n\x00")
@example(b"[" * 100_000 + b"\n")
@example(b'{"loss": 1' + b"0" * 5000 + b', "global_step/max_steps": "2/40"}\n')
def test_a_log_of_any_bytes_never_raises(data):
    read_log(data)


@PROPERTY
@given(log=swift_log(), where=st.floats(0, 1))
def test_a_cut_log_holds_the_whole_lines_before_the_cut_and_nothing_else(log, where):
    data, held = log
    cut = round(where * len(data))
    full = read_log(data)
    assert_holds(full, held)

    curves = read_log(data[:cut])

    whole = log_points(full)
    for tag, points in log_points(curves).items():
        assert points <= whole[tag], tag
    # every train line wholly before the cut is read
    lines = [json.loads(line) for line in data[:cut].split(b"\n")[:-1]]
    done = {int(row["global_step/max_steps"].partition("/")[0]) for row in lines if "loss" in row}
    assert done <= set(curves.scalars["train/loss"].steps.tolist() if "train/loss" in curves.scalars else [])


TEXT_LINE = st.text(max_size=60).filter(
    lambda s: not any(_parses_as_object(part) for part in s.splitlines()) and s.strip() != ""
)
JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
NOT_A_NUMBER = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=10),
    st.lists(JSON, max_size=3),
    st.dictionaries(st.text(max_size=5), JSON, max_size=3),
)
# an object that looks like a log line but has no number a curve could take
NON_NUMERIC_LINE = st.fixed_dictionaries(
    {"loss": NOT_A_NUMBER},
    optional={
        k: NOT_A_NUMBER for k in ("grad_norm", "learning_rate", "epoch", "eval_loss", "token_acc", "nested")
    }
    | {"global_step/max_steps": st.text(string.ascii_letters + string.digits + "/ ", max_size=12)},
)
GARBAGE_LINE = st.one_of(
    TEXT_LINE,
    st.lists(JSON, max_size=4).map(json.dumps),  # arrays
    (st.floats() | st.integers()).map(json.dumps),  # numbers
    st.text(max_size=20).map(json.dumps),  # strings
    st.just("null"),
    NON_NUMERIC_LINE.map(json.dumps),
)


def _parses_as_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


@PROPERTY
@given(log=swift_log(), garbage=st.lists(st.tuples(st.floats(0, 1), GARBAGE_LINE), min_size=1, max_size=8))
def test_garbage_lines_between_log_lines_change_no_point(log, garbage):
    data, held = log
    lines = data.split(b"\n")[:-1]
    for where, line in garbage:
        lines.insert(round(where * len(lines)), line.encode("utf-8"))

    curves = read_log(b"\n".join(lines) + b"\n")

    assert log_points(curves) == log_points(read_log(data))
    assert_holds(curves, held)
    assert curves.warnings or all(_parses_as_object(line) for _, line in garbage)


NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


@PROPERTY
@given(log=swift_log(losses=st.one_of(NON_FINITE, FINITE)))
def test_bare_nan_and_infinity_are_read_as_non_finite(log):
    """Python's json writes them bare (NaN, Infinity, -Infinity): never a finite number."""
    data, held = log

    curves = read_log(data)

    assert_holds(curves, held)


@PROPERTY
@given(log=swift_log(), flips=st.lists(st.floats(0, 1), min_size=1, max_size=3))
def test_a_log_with_flipped_bits_never_raises_and_steps_come_from_the_lines(log, flips):
    """Text has no checksum: a flipped digit may change a value or a step. Each step read is one
    written, one whose digits are in a flipped line, or 0 (a line whose step does not parse is
    taken as the previous one's, 0 before any)."""
    data, held = log
    out = bytearray(data)
    line_starts = [0] + [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    touched = []
    for f in flips:
        at = min(int(f * len(data)), len(data) - 1)
        out[at] ^= 1 << (int(f * 1e6) % 8)
        first = max(i for i, s in enumerate(line_starts) if s <= at)
        touched.append((line_starts[first], line_starts[min(first + 2, len(line_starts) - 1)]))

    curves = read_log(bytes(out))

    texts = [bytes(out[a:b]).decode("utf-8", "replace") for a, b in touched]
    written = {step for points in held.values() for step in points}
    for series in curves.scalars.values():
        for step in series.steps.tolist():
            assert step in written or step == 0 or any(str(step) in text for text in texts), step


# ---------------------------------------------------------------------------------------------
# what the properties found in the jsonl reading (swiftops.runfolder / swiftops.curves)

SWIFT_KEYS = (
    "loss",
    "grad_norm",
    "eval_loss",
    "epoch",
    "global_step/max_steps",
    "step",
    "current_steps",
    "total_steps",
    "global_step",
    "best_model_checkpoint",
    "last_model_checkpoint",
)


@PROPERTY
@given(
    st.lists(
        st.dictionaries(st.sampled_from(SWIFT_KEYS), JSON | st.text(), min_size=1), min_size=1, max_size=4
    )
)
@example([{"last_model_checkpoint": 5}])
def test_log_lines_with_odd_values_under_swift_keys_never_raise(rows):
    read_log(b"".join(json.dumps(row).encode() + b"\n" for row in rows))


BIG = "1" + "0" * 400  # an integer JSON reads as a Python int no float holds


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            '{"loss": 1.0, "global_step/max_steps": "\u00b2/40"}',
            id="superscript-step",
        ),
        pytest.param(
            '{"loss": 1.0, "global_step/max_steps": "2/\u00b2"}',
            id="superscript-max-steps",
        ),
        pytest.param(
            f'{{"loss": {BIG}, "global_step/max_steps": "2/40"}}',
            id="huge-integer-value",
        ),
        pytest.param(
            '{"loss": 1.0, "global_step/max_steps": "99999999999999999999/40"}',
            id="step-past-int64",
        ),
        pytest.param(
            '{"loss": 1.0, "current_steps": 99999999999999999999}',
            id="current-steps-past-int64",
        ),
        pytest.param(
            '{"last_model_checkpoint": 5}',
            id="checkpoint-not-a-string",
        ),
        pytest.param(
            '{"best_model_checkpoint": ["a"]}',
            id="checkpoint-a-list",
        ),
        pytest.param(
            json.dumps({"last_model_checkpoint": "x" * 5000}),
            id="checkpoint-name-too-long",
        ),
    ],
)
def test_an_odd_value_in_a_log_line_is_no_point_and_never_raises(line):
    """Each case is one line that once made read_curves raise: a step in superscript digits or past
    int64, an integer no float holds, a checkpoint that is no string or no possible file name."""
    curves = read_log(line.encode("utf-8") + b"\n")
    assert all(((s.steps >= 0) & (s.steps <= 2**53)).all() for s in curves.scalars.values())
    loss = curves.train_loss
    assert loss is None or np.isfinite(loss.values).all()  # no value invented from an odd number
