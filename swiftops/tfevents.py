"""TensorBoard event files -> the scalar points they hold (the record codec; numpy at import,
tensorboard's `Event` protobuf when first needed).

An event file is TFRecord framing (u64 length, u32 masked CRC-32C of the length, data, u32 masked
CRC-32C of the data) around `Event` protobufs. The common one-scalar event is decoded with numpy
for all records at once; every other record goes through the protobuf parser.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np


@dataclass
class EventPoints:
    """The scalar points of one event file, in record order."""

    tags: list[str]  # tag id -> name
    tag_ids: np.ndarray  # int64, one per point
    steps: np.ndarray  # int64
    values: np.ndarray  # float64
    created: float  # wall time of the file's first event (orders the files of a resumed run)


def parse_event_bytes(data: bytes, name: str = "events") -> tuple[EventPoints, list[str]]:
    """Every scalar point of one event file's bytes. A cut or corrupt tail ends the reading
    at the last whole record, with a warning; it never raises."""
    warnings: list[str] = []
    starts, lengths, end = _frame(data)
    if end < len(data):
        warnings.append(
            f"{name}: the last {len(data) - end} bytes are not a whole record (a run killed while "
            f"writing?): read the {len(starts)} whole records before them"
        )
    buf = np.frombuffer(data, dtype=np.uint8)
    d0 = starts + 12
    d1 = d0 + lengths
    fast, steps, tag_start, tag_len, fast_value = _decode_simple(buf, d0, d1)

    # tags of the fast records, grouped exactly (hash, then verified byte for byte)
    tag_names: list[str] = []
    tag_index: dict[str, int] = {}
    fast_rec = np.flatnonzero(fast)
    fast_ids = _group_tags(data, buf, tag_start[fast_rec], tag_len[fast_rec], tag_names, tag_index)
    fast_steps = steps[fast_rec]
    fast_values = fast_value[fast_rec]

    # everything else through the protobuf parser (header event, tensor scalars, odd layouts)
    slow_rec: list[int] = []
    slow_ids: list[int] = []
    slow_steps: list[int] = []
    slow_values: list[float] = []
    skip_tags: set[str] = set()
    created = math.inf
    cut = len(starts)
    slow = np.flatnonzero(~fast)
    if len(slow):
        from google.protobuf.message import DecodeError
        from tensorboard.compat.proto import event_pb2

        parse = event_pb2.Event.FromString
        for rec in slow.tolist():
            try:
                event = parse(data[d0[rec] : d1[rec]])
            except (DecodeError, ValueError, RuntimeError):
                warnings.append(
                    f"{name}: record {rec} does not parse (corrupt file?): read the {rec} records before it"
                )
                cut = rec
                break
            if rec == 0:
                created = event.wall_time
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                number = _scalar_of(value, skip_tags)
                if number is None:
                    continue
                tid = tag_index.get(value.tag)
                if tid is None:
                    tid = tag_index[value.tag] = len(tag_names)
                    tag_names.append(value.tag)
                slow_rec.append(rec)
                slow_ids.append(tid)
                slow_steps.append(event.step)
                slow_values.append(number)
    if created == math.inf and len(starts):
        created = _wall_time_of_first(buf, d0, d1)

    # one sequence in record order
    if slow_rec:
        rec = np.concatenate([fast_rec, np.array(slow_rec, dtype=np.int64)])
        order = np.argsort(rec, kind="stable")
        rec = rec[order]
        tag_ids = np.concatenate([fast_ids, np.array(slow_ids, dtype=np.int64)])[order]
        all_steps = np.concatenate([fast_steps, np.array(slow_steps, dtype=np.int64)])[order]
        values = np.concatenate([fast_values, np.array(slow_values, dtype=np.float64)])[order]
    else:
        rec, tag_ids, all_steps, values = fast_rec, fast_ids, fast_steps, fast_values
    keep = rec < cut
    if skip_tags:  # a tag some event marks as another plugin's (text, histograms): not a curve
        keep &= ~np.isin(tag_ids, [tag_index[t] for t in skip_tags if t in tag_index])
    if not keep.all():
        tag_ids, all_steps, values = tag_ids[keep], all_steps[keep], values[keep]
    return EventPoints(tag_names, tag_ids, all_steps, values, created), warnings


_U64 = struct.Struct("<Q")


def _frame(data: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """Record framing: (record starts, data lengths, end of the last whole record).

    A record is u64 length, u32 crc, data, u32 crc; the CRCs are not checked (speed). The loop
    reads only the low byte of each length (an event of one scalar is well under 256 bytes) for
    a chunk of records; numpy then checks their full lengths, and a longer record (text, graph,
    image) is framed exactly before the loop goes on after it.
    """
    n = len(data)
    words = _unaligned(np.frombuffer(data, dtype=np.uint8), "<u8")
    starts_parts: list[np.ndarray] = []
    length_parts: list[np.ndarray] = []
    pos = 0
    while pos + 16 <= n:
        chunk: list[int] = []
        append = chunk.append
        try:
            for _ in repeat(None, _FRAME_CHUNK):
                append(pos)
                pos += 16 + data[pos]
        except IndexError:
            pass
        starts = np.array(chunk, dtype=np.int64)
        starts = starts[starts + 16 <= n]
        lengths = words[starts]
        long = np.flatnonzero(lengths >= 256)
        if not len(long):
            starts_parts.append(starts)
            length_parts.append(lengths)
            continue
        k = int(long[0])
        starts_parts.append(starts[:k])
        length_parts.append(lengths[:k])
        pos = int(starts[k])
        (length,) = _U64.unpack_from(data, pos)
        if pos + 16 + length > n:
            break
        starts_parts.append(np.array([pos], dtype=np.int64))
        length_parts.append(np.array([length], dtype=np.uint64))
        pos += 16 + length
    if not starts_parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0
    starts = np.concatenate(starts_parts)
    lengths = np.concatenate(length_parts).astype(np.int64)
    whole = np.flatnonzero(starts + 16 + lengths > n)  # the first record cut short ends the file
    if len(whole):
        starts, lengths = starts[: whole[0]], lengths[: whole[0]]
    end = int(starts[-1] + 16 + lengths[-1]) if len(starts) else 0
    return starts, lengths, end


_FRAME_CHUNK = 4096  # records framed between two checks of their lengths


def _unaligned(buf: np.ndarray, dtype: str) -> np.ndarray:
    """A view of buf holding the number of type dtype that starts at every byte offset, so
    that one gather reads a whole (unaligned) word."""
    size = np.dtype(dtype).itemsize
    count = max(len(buf) - size + 1, 0)
    return np.ndarray((count,), dtype=dtype, buffer=buf, offset=0, strides=(1,))


def _decode_simple(
    buf: np.ndarray, d0: np.ndarray, d1: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode, for all records at once, the event every scalar logger writes:
    Event{wall_time, step, summary{value{tag, simple_value}}}, one value, short tag.

    Four 8-byte gathers a record: the wall_time key; the step key and its varint; the six
    key/length bytes of summary, value and tag; the value's key and its float. Returns a mask
    of the records that have exactly that layout, and for them the step, the tag's offset and
    length and the float. Other records go to the protobuf parser.
    """
    words = _unaligned(buf, "<u8")
    top = len(words) - 1
    ok = np.ones(len(d0), dtype=bool)

    def word(at: np.ndarray) -> np.ndarray:
        nonlocal ok
        ok &= at <= top
        return words[np.clip(at, 0, max(top, 0))] if top >= 0 else np.zeros(len(at), np.uint64)

    def byte(w: np.ndarray, k: int) -> np.ndarray:
        return ((w >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.int64)

    ok &= byte(word(d0), 0) == 0x09  # field 1 (wall_time), fixed64
    p = d0 + 9
    w = word(p)
    has_step = byte(w, 0) == 0x10  # field 2 (step), varint; absent when the step is 0
    step = np.zeros(len(d0), dtype=np.uint64)
    width = np.zeros(len(d0), dtype=np.int64)
    going = has_step.copy()
    for k in range(1, 8):  # up to 7 varint bytes: steps below 2**49
        b = byte(w, k)
        step |= np.where(going, (b & 0x7F).astype(np.uint64) << np.uint64(7 * (k - 1)), np.uint64(0))
        width += going
        going &= (b & 0x80) != 0
    ok &= ~going
    q = np.where(has_step, p + 1 + width, p)
    w = word(q)  # summary key, its length, value key, its length, tag key, tag length
    ok &= (byte(w, 0) == 0x2A) & (byte(w, 2) == 0x0A) & (byte(w, 4) == 0x0A)
    ok &= (byte(w, 1) < 0x80) & (byte(w, 3) < 0x80) & (byte(w, 5) < 0x80)
    ok &= (q + 2 + byte(w, 1) == d1) & (q + 4 + byte(w, 3) == d1)  # exactly one value
    tag_start = q + 6
    tag_len = byte(w, 5)
    end = tag_start + tag_len
    w = word(end)  # simple_value key (float32, last in the record) and the float
    ok &= (byte(w, 0) == 0x15) & (end + 5 == d1)
    value = ((w >> np.uint64(8)) & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
    return ok, step.view(np.int64), tag_start, tag_len, value.astype(np.float64)


def _group_tags(
    data: bytes,
    buf: np.ndarray,
    start: np.ndarray,
    length: np.ndarray,
    names: list[str],
    index: dict[str, int],
) -> np.ndarray:
    """Tag id of each record: a hash of the tag bytes groups them, a byte-for-byte comparison
    against each group's first member proves the grouping (else a dict does it exactly)."""
    if not len(start):
        return np.zeros(0, dtype=np.int64)
    # the tag as 8-byte words read straight from the file, the bytes past its end masked off
    # (a tag is followed by its value and the record's crc, so its words never leave the file)
    words8 = _unaligned(buf, "<u8")
    top = len(words8) - 1
    keep_bytes = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
    width = -(-int(length.max()) // 8)
    words = np.empty((len(start), width), dtype=np.uint64)
    for j in range(width):
        left = np.clip(length - 8 * j, 0, 8)
        words[:, j] = words8[np.minimum(start + 8 * j, top)] & keep_bytes[left]
    h = length.astype(np.uint64)
    for j in range(width):
        h = (h * np.uint64(0x100000001B3)) ^ words[:, j]
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    if np.array_equal(words, words[first[inverse]]) and np.array_equal(length, length[first[inverse]]):
        ids = np.empty(len(first), dtype=np.int64)
        for g, rec in enumerate(first.tolist()):
            tag = data[int(start[rec]) : int(start[rec] + length[rec])].decode("utf-8", "replace")
            if tag not in index:
                index[tag] = len(names)
                names.append(tag)
            ids[g] = index[tag]
        return ids[inverse]
    out = np.empty(len(start), dtype=np.int64)  # a hash collision: exact and slower
    for i, (a, b) in enumerate(zip(start.tolist(), (start + length).tolist(), strict=True)):
        tag = data[a:b].decode("utf-8", "replace")
        if tag not in index:
            index[tag] = len(names)
            names.append(tag)
        out[i] = index[tag]
    return out


# DataType enum values of tensorboard's TensorProto, and the numpy type of their bytes
_TENSOR_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 9: "<i8", 19: "<f2"}


def _scalar_of(value: Any, skip_tags: set[str]) -> float | None:
    """The number in a Summary.Value: old-style simple_value, or a one-element numeric tensor
    (TF2 / new-style scalars). None for anything else (images, text, histograms)."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind != "tensor":
        return None
    plugin = value.metadata.plugin_data.plugin_name if value.HasField("metadata") else ""
    if plugin and plugin != "scalars":
        skip_tags.add(value.tag)
        return None
    tensor = value.tensor
    if any(d.size != 1 for d in tensor.tensor_shape.dim):
        return None
    dtype = tensor.dtype
    if tensor.tensor_content:
        if dtype not in _TENSOR_DTYPES:
            return None
        arr = np.frombuffer(tensor.tensor_content, dtype=_TENSOR_DTYPES[dtype])
        return float(arr[0]) if arr.size == 1 else None
    if dtype == 19 and len(tensor.half_val) == 1:  # half floats travel as uint16 bit patterns
        return float(np.array(tensor.half_val[0], dtype=np.uint16).view(np.float16))
    for field_values in (tensor.float_val, tensor.double_val, tensor.int_val, tensor.int64_val):
        if len(field_values) == 1:
            return float(field_values[0])
    return None


def _wall_time_of_first(buf: np.ndarray, d0: np.ndarray, d1: np.ndarray) -> float:
    if d1[0] - d0[0] >= 9 and buf[d0[0]] == 0x09:
        return float(np.ascontiguousarray(buf[d0[0] + 1 : d0[0] + 9]).view("<f8")[0])
    return math.inf
