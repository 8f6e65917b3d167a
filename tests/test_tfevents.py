"""swiftops.tfevents on REAL event files (tensorboard's own writer): both CRCs of every record are
checked, so a flipped bit, a cut or garbage costs the records it hits, with a warning, and never
becomes a point."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from helpers_events import RUN_NAME, make_run, steps_of, write_events, write_raw_events

from swiftops import tfevents
from swiftops.curves import read_curves
from swiftops.tfevents import parse_event_bytes

NAME = "events.out.tfevents.1.test"
STEPS = steps_of(8)
LOSS = [1.0 + s / 8 for s in STEPS]  # exact in float32, so a point compares equal
GRAD = [0.5 * s for s in STEPS]


@pytest.fixture
def data(tmp_path) -> bytes:
    """Record 0 is the writer's file_version event; then per step the loss, then the grad norm."""
    path = write_events(tmp_path, {"train/loss": (STEPS, LOSS), "train/grad_norm": (STEPS, GRAD)})
    return path.read_bytes()


def written() -> list[tuple[str, int, float]]:
    return [
        p
        for s, lo, g in zip(STEPS, LOSS, GRAD, strict=True)
        for p in (("train/loss", s, lo), ("train/grad_norm", s, g))
    ]


def point_of(record: int) -> tuple[str, int, float]:
    return written()[record - 1]


def read(data: bytes) -> tuple[list[tuple[str, int, float]], list[str]]:
    got, warnings = parse_event_bytes(data, NAME)
    points = [
        (got.tags[t], s, v)
        for t, s, v in zip(got.tag_ids.tolist(), got.steps.tolist(), got.values.tolist(), strict=True)
    ]
    return points, warnings


def spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each record of an intact file."""
    out, pos = [], 0
    while pos + 16 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        out.append((pos, pos + 16 + length))
        pos += 16 + length
    return out


def flipped(data: bytes, at: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[at] ^= 1 << bit
    return bytes(out)


def framed(payload: bytes) -> bytes:
    """A TFRecord with valid CRCs, by tensorboard's own (pure Python) CRC-32C."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    header = struct.pack("<Q", len(payload))
    return (
        header
        + struct.pack("<I", masked_crc32c(header))
        + payload
        + struct.pack("<I", masked_crc32c(payload))
    )


def without(record: int) -> list[tuple[str, int, float]]:
    return [p for p in written() if p != point_of(record)]


def test_an_intact_file_reads_exactly(data):
    assert read(data) == (written(), [])


@pytest.mark.parametrize("bit", [6, 0], ids=["exponent-would-read-NaN", "mantissa-wrong-finite-value"])
def test_a_flipped_bit_in_a_value_drops_that_point(data, bit):
    record = 5
    _, end = spans(data)[record]
    points, warnings = read(flipped(data, end - 5, bit))  # the float's top byte, before the data CRC

    assert points == without(record)
    assert all(math.isfinite(v) for _, _, v in points)
    assert len(warnings) == 1 and NAME in warnings[0] and f"record {record} dropped" in warnings[0]


def test_a_flipped_bit_in_a_tag_drops_the_record_and_makes_no_new_tag(data):
    record = 3
    start, _ = spans(data)[record]
    at = data.index(b"train/loss", start)
    points, warnings = read(flipped(data, at + 2, 1))  # "tsain/loss"

    assert points == without(record)
    assert {tag for tag, _, _ in points} == {"train/loss", "train/grad_norm"}
    assert len(warnings) == 1 and f"record {record} dropped" in warnings[0]


@pytest.mark.parametrize(
    ("byte", "bit"),
    [(0, 0), (0, 4), (0, 7), (1, 0), (5, 3), (7, 7)],
    ids=["shorter", "longer", "past-255", "x256", "huge", "top-bit"],
)
def test_a_flipped_length_byte_loses_that_record_only(data, byte, bit):
    record = 6
    start, _ = spans(data)[record]
    points, warnings = read(flipped(data, start + byte, bit))

    assert points == without(record)
    assert len(warnings) == 1 and NAME in warnings[0]
    assert f"record {record}'s length fails its CRC" in warnings[0] and "went on" in warnings[0]


def test_a_flipped_length_in_the_last_record_loses_it_only(data):
    record = len(spans(data)) - 1
    start, _ = spans(data)[record]
    points, warnings = read(flipped(data, start + 6, 2))

    assert points == without(record)
    assert len(warnings) == 1 and "no whole record follows" in warnings[0]


@pytest.mark.parametrize("which", ["length CRC", "data CRC"])
def test_a_flipped_bit_in_a_crc_drops_its_record(data, which):
    record = 4
    start, end = spans(data)[record]
    at = start + 9 if which == "length CRC" else end - 2
    points, warnings = read(flipped(data, at, 5))

    assert points == without(record)
    assert len(warnings) == 1
    expected = (
        f"record {record}'s length fails its CRC" if which == "length CRC" else f"record {record} dropped"
    )
    assert expected in warnings[0]


def test_a_flipped_bit_in_the_file_version_event_costs_no_point(data):
    start, _ = spans(data)[0]
    points, warnings = read(flipped(data, start + 20, 3))

    assert points == written()
    assert len(warnings) == 1 and "record 0 dropped" in warnings[0]


@pytest.mark.parametrize("into", [1, 8, 12, 13, 20, -5, -4, -1], ids=lambda k: f"at{k}")
def test_a_file_cut_inside_a_record_reads_the_whole_records_before_it(data, into):
    record = 7
    start, end = spans(data)[record]
    cut = (start if into > 0 else end) + into
    points, warnings = read(data[:cut])

    assert points == written()[: record - 1]
    assert len(warnings) == 1 and "not a whole record" in warnings[0] and NAME in warnings[0]


def test_a_file_cut_between_records_reads_without_a_warning(data):
    _, end = spans(data)[7]
    assert read(data[:end]) == (written()[:7], [])


@pytest.mark.parametrize("size", [0, 5, 11, 12, 16, 100, 10_000, 200_000])
def test_random_bytes_are_no_points_and_never_raise(size):
    points, warnings = read(np.random.default_rng(size).bytes(size))

    assert points == []
    assert bool(warnings) == (size > 0)


@pytest.mark.parametrize("fill", [b"\x00", b"\xff"])
def test_a_file_of_one_repeated_byte_is_no_points(fill):
    points, warnings = read(fill * 100_000)

    assert points == [] and len(warnings) == 1


def test_a_zero_filled_tail_after_a_crash_keeps_every_record_before_it(data):
    """A file system that lost the end of a file can hand back zeros in its place."""
    points, warnings = read(data + bytes(4096))

    assert points == written()
    assert len(warnings) == 1 and "no whole record follows" in warnings[0]


def test_garbage_between_two_records_is_skipped_and_reading_goes_on(data):
    _, end = spans(data)[5]
    garbage = np.random.default_rng(1).bytes(300)
    points, warnings = read(data[:end] + garbage + data[end:])

    assert points == written()
    assert len(warnings) == 1 and "300 bytes skipped" in warnings[0]


def test_many_corrupt_records_give_one_warning_that_counts_them(tmp_path):
    steps = steps_of(100)
    values = [float(s) for s in steps]
    data = write_events(tmp_path, {"train/loss": (steps, values)}).read_bytes()
    corrupt = list(range(10, 90, 4))  # 20 records
    out = bytearray(data)
    for record in corrupt:
        _, end = spans(data)[record]
        out[end - 6] ^= 0x10

    points, warnings = read(bytes(out))

    assert [(s, v) for _, s, v in points] == [
        (s, v) for s, v in zip(steps, values, strict=True) if s not in corrupt
    ]
    assert len(warnings) == 1 and "20 records (10, 14, 18, 22, 26, ...) dropped" in warnings[0]


@pytest.mark.parametrize("block_bytes", [64, 1000, 1 << 18])
def test_the_block_check_finds_each_corrupt_record_wherever_it_lies(tmp_path, monkeypatch, block_bytes):
    """The data CRCs are checked a block of bytes per C call: a corrupt record anywhere (first or
    last of a block, in a block of one record) is found, and only it is dropped."""
    monkeypatch.setattr(tfevents, "_CRC_BLOCK_BYTES", block_bytes)
    steps = steps_of(60)
    data = write_events(tmp_path, {"train/loss": (steps, [float(s) for s in steps])}).read_bytes()

    for record, (_, end) in enumerate(spans(data)[1:], start=1):
        points, warnings = read(flipped(data, end - 7, 2))

        assert [s for _, s, _ in points] == [s for s in steps if s != record]
        assert len(warnings) == 1 and f"record {record} dropped" in warnings[0]


def long_text_event():
    """A text summary of a few KB, as HF writes its args before the first scalar."""
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

    text = summary_pb2.Summary.Value(
        tag="args",
        tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"x" * 5000]),
        metadata=summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text")
        ),
    )
    return event_pb2.Event(step=0, wall_time=1.7e9, summary=summary_pb2.Summary(value=[text]))


def scalar_event(step: int, value: float, tag: str = "train/loss"):
    from tensorboard.compat.proto import event_pb2, summary_pb2

    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    return event_pb2.Event(wall_time=1.7e9 + step, step=step, summary=summary)


@pytest.mark.parametrize("part", ["data", "length", "length CRC"])
def test_a_corrupt_long_record_is_dropped_and_the_scalars_after_it_read(tmp_path, part):
    data = write_raw_events(
        tmp_path, [long_text_event(), scalar_event(1, 2.5), scalar_event(2, 2.25)]
    ).read_bytes()
    start, end = spans(data)[1]
    assert end - start > 5000
    at = {"data": start + 3000, "length": start + 1, "length CRC": start + 10}[part]

    points, warnings = read(flipped(data, at, 4))

    assert points == [("train/loss", 1, 2.5), ("train/loss", 2, 2.25)]
    assert len(warnings) == 1 and "record 1" in warnings[0]


def test_a_record_whose_crc_holds_but_holds_no_event_is_skipped(data):
    _, end = spans(data)[2]
    points, warnings = read(data[:end] + framed(b"\xff\xff\xff not a protobuf") + data[end:])

    assert points == written()
    assert len(warnings) == 1 and "record 3 skipped: no readable event" in warnings[0]


def test_tensors_that_are_not_one_readable_number_are_no_points(tmp_path):
    """Odd but CRC-valid events (another writer's) are left out, never an exception."""
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

    def tensor_event(step, **tensor):
        value = summary_pb2.Summary.Value(tag="train/loss", tensor=tensor_pb2.TensorProto(**tensor))
        return event_pb2.Event(wall_time=1.7e9, step=step, summary=summary_pb2.Summary(value=[value]))

    data = write_raw_events(
        tmp_path,
        [
            tensor_event(1, dtype=types_pb2.DT_FLOAT, tensor_content=b"\x00\x00\x80"),  # 3 bytes of a float
            tensor_event(2, dtype=types_pb2.DT_DOUBLE, tensor_content=bytes(12)),
            tensor_event(3, dtype=types_pb2.DT_HALF, half_val=[1 << 20]),  # more than 16 bits
            tensor_event(4, dtype=types_pb2.DT_FLOAT, float_val=[0.75]),
        ],
    ).read_bytes()

    points, warnings = read(data)

    assert ("train/loss", 4, 0.75) in points and not [p for p in points if p[1] in (1, 2)]
    assert warnings == []


def test_a_corrupt_value_never_reaches_the_curves_as_a_nan_loss(tmp_path):
    """The bug this guards against: a flipped exponent bit read as a NaN loss, then a 'diverged'
    verdict."""
    steps = steps_of(40)
    run = make_run(tmp_path, train=(steps, [2.0 - s / 40 for s in steps]))
    (path,) = (run / "runs").iterdir()
    data = path.read_bytes()
    at = data.index(struct.pack("<f", 2.0 - 17 / 40)) + 3  # the loss of step 17, its top byte
    path.write_bytes(flipped(data, at, 6))

    curves = read_curves(tmp_path / RUN_NAME)

    assert np.isfinite(curves.train_loss.values).all()
    assert 17 not in curves.train_loss.steps.tolist() and len(curves.train_loss) == 39
    assert any(path.name in w and "dropped" in w for w in curves.warnings)
