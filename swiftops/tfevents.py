"""TensorBoard event files -> the scalar points they hold (the record codec; numpy and
google_crc32c at import, tensorboard's `Event` protobuf when first needed).

An event file is TFRecord framing (u64 length, u32 masked CRC-32C of the length, data, u32 masked
CRC-32C of the data) around `Event` protobufs. Both CRCs of every record are checked, so a flipped
bit never becomes a point: a record whose data fails is dropped, a length that fails ends the
framing there and reading resumes at the next valid record, each with a warning. The common
one-scalar event is decoded with numpy for all records at once; every other record goes through
the protobuf parser.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass
from itertools import pairwise, repeat
from typing import Any

# google-crc32c: Google's CRC32C C library (SSE4.2 / ARMv8 CRC instructions where the CPU has
# them), wheels for the usual platforms, kept by Google's Python client team, Apache-2.0 like
# this project (the other C package on PyPI, crc32c, is LGPL). It takes bytes only, no views.
import google_crc32c
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
    """Every scalar point of one event file's bytes. A cut tail, a record failing its CRC or one
    that holds no event is left out with a warning naming the file and the record; it never
    raises."""
    warnings: list[str] = []
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, lengths, intact, numbers = _records(data, buf, name, warnings)
    d0 = starts + 12
    d1 = d0 + lengths
    fast, steps, tag_start, tag_len, fast_value = _decode_simple(buf, d0, d1)
    fast &= intact

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
    unparsed: list[int] = []
    first = int(np.argmax(intact)) if intact.any() else -1  # its wall time orders the files
    created = math.inf
    slow = np.flatnonzero(~fast & intact)
    if len(slow):
        from google.protobuf.message import DecodeError
        from tensorboard.compat.proto import event_pb2

        parse = event_pb2.Event.FromString
        for rec in slow.tolist():
            try:
                event = parse(data[d0[rec] : d1[rec]])
            except (DecodeError, ValueError, RuntimeError):
                unparsed.append(rec if numbers is None else int(numbers[rec]))
                continue
            if rec == first:
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
    if unparsed:  # the CRC holds, so the bytes are as written: not an Event, not this reader's
        warnings.append(
            f"{name}: {_records_named(unparsed)} skipped: no readable event in it (another format?)"
        )
    if created == math.inf and first >= 0:
        created = _wall_time_of(buf, int(d0[first]), int(d1[first]))

    # one sequence in record order
    if slow_rec:
        rec = np.concatenate([fast_rec, np.array(slow_rec, dtype=np.int64)])
        order = np.argsort(rec, kind="stable")
        tag_ids = np.concatenate([fast_ids, np.array(slow_ids, dtype=np.int64)])[order]
        all_steps = np.concatenate([fast_steps, np.array(slow_steps, dtype=np.int64)])[order]
        values = np.concatenate([fast_values, np.array(slow_values, dtype=np.float64)])[order]
    else:
        tag_ids, all_steps, values = fast_ids, fast_steps, fast_values
    if skip_tags:  # a tag some event marks as another plugin's (text, histograms): not a curve
        keep = ~np.isin(tag_ids, [tag_index[t] for t in skip_tags if t in tag_index])
        tag_ids, all_steps, values = tag_ids[keep], all_steps[keep], values[keep]
    return EventPoints(tag_names, tag_ids, all_steps, values, created), warnings


def _records_named(numbers: list[int]) -> str:
    """'record 7' or '3 records (7, 9, 12)', the list cut after a few."""
    if len(numbers) == 1:
        return f"record {numbers[0]}"
    shown = ", ".join(str(n) for n in numbers[:5]) + (", ..." if len(numbers) > 5 else "")
    return f"{len(numbers)} records ({shown})"


def _records(
    data: bytes, buf: np.ndarray, name: str, warnings: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The records of the file: (starts, data lengths, data CRC holds, record numbers, None when
    they are the records' positions).

    A length failing its CRC cannot be trusted to find the next record: the framing stops
    there and starts again at the next offset holding a length whose CRC holds (a bit flipped
    in a length loses that one record, not the rest of the file). The record numbers, which
    the warnings name, count such a record too.
    """
    n = len(data)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []  # ..., number of the first
    corrupt: list[int] = []
    broken: list[tuple[int, int, int]] = []  # (record number, bytes skipped from, to)
    pos = 0
    number = 0
    while True:
        starts, lengths, end = _frame(data, pos)
        intact = _check_crcs(data, buf, starts, lengths)
        parts.append((starts, lengths, intact, number))
        if not intact.all():
            corrupt += (number + np.flatnonzero(~intact)).tolist()
        number += len(starts)
        if end == n:
            break
        if n - end < 12 or _header_ok(data, end):
            warnings.append(
                f"{name}: the last {n - end} bytes are not a whole record (a run killed while "
                f"writing?): read the {number} whole records before them"
            )
            break
        resume = _resync(data, buf, end + 1)
        broken.append((number, end, n if resume is None else resume))
        if resume is None:
            break
        number += 1
        pos = resume
    if broken:
        warnings.append(_broken_lengths(name, broken, n))
    if corrupt:
        warnings.append(
            f"{name}: {_records_named(corrupt)} dropped: the data fails its CRC (a corrupt file?)"
        )
    if len(parts) == 1:
        return *parts[0][:3], None
    numbers = np.concatenate([first + np.arange(len(starts)) for starts, _, _, first in parts])
    starts, lengths, intact = (np.concatenate(column) for column in list(zip(*parts, strict=True))[:3])
    return starts, lengths, intact, numbers


def _broken_lengths(name: str, broken: list[tuple[int, int, int]], n: int) -> str:
    """One warning for all the lengths that failed their CRC."""
    skipped = sum(b - a for _, a, b in broken)
    at_end = broken[-1][2] == n
    if len(broken) == 1:
        number, first, last = broken[0]
        where = "and no whole record follows" if at_end else f"from byte {first} to {last}"
        return (
            f"{name}: record {number}'s length fails its CRC (a corrupt file?): {skipped} bytes "
            f"skipped {where}" + ("" if at_end else ", reading went on at the next record")
        )
    shown = ", ".join(str(number) for number, _, _ in broken[:5]) + (", ..." if len(broken) > 5 else "")
    return (
        f"{name}: the lengths of {len(broken)} records ({shown}) fail their CRC (a corrupt file?): "
        f"{skipped} bytes skipped, reading went on at the next record after each"
        + (" (none after the last)" if at_end else "")
    )


_U64 = struct.Struct("<Q")


def _frame(data: bytes, pos: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Record framing from offset pos on: (record starts, data lengths, end of the framed
    records). It stops at the first record cut short or whose length fails its CRC; the caller
    tells the two apart at `end`.

    The loop reads only the low byte of each length (an event of one scalar is well under 256
    bytes) for a chunk of records; numpy then checks their full lengths and their CRCs (below
    256, bytes 4-11 of a record are four zeros and the CRC its length byte tells: one compare).
    A longer record (text, graph, image) is framed exactly before the loop goes on after it.
    """
    n = len(data)
    words = _unaligned(np.frombuffer(data, dtype=np.uint8), "<u8")
    short_header = _crc_tables()[0].astype(np.uint64) << np.uint64(32)  # bytes 4-11, little endian
    starts_parts: list[np.ndarray] = []
    length_parts: list[np.ndarray] = []
    end = pos
    while end + 16 <= n:
        chunk: list[int] = []
        append = chunk.append
        pos = end
        try:
            for _ in repeat(None, _FRAME_CHUNK):
                append(pos)
                pos += 16 + data[pos]
        except IndexError:
            pass
        starts = np.array(chunk, dtype=np.int64)
        starts = starts[starts + 16 <= n]
        lengths = words[starts]
        ok = (lengths < 256) & (words[starts + 4] == short_header[lengths & np.uint64(0xFF)])
        k = len(starts) if ok.all() else int(np.argmin(ok))
        if k == len(starts) and int(starts[-1] + 16 + lengths[-1]) > n:  # only the last can be cut
            k -= 1
        starts_parts.append(starts[:k])
        length_parts.append(lengths[:k])
        if k == len(starts):
            end = int(starts[-1] + 16 + lengths[-1])
            continue
        end = int(starts[k])  # a longer record, or one cut short or whose length fails its CRC
        (length,) = _U64.unpack_from(data, end)
        if end + 16 + length > n or not _header_ok(data, end):
            break
        starts_parts.append(np.array([end], dtype=np.int64))
        length_parts.append(np.array([length], dtype=np.uint64))
        end += 16 + length
    if not starts_parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), end
    return np.concatenate(starts_parts), np.concatenate(length_parts).astype(np.int64), end


_FRAME_CHUNK = 4096  # records framed between two checks of their lengths

_MASK_DELTA = 0xA282EAD8
_CRC_BLOCK_BYTES = 1 << 18  # records checked by one C call: a copy of them stays in cache


def _check_crcs(data: bytes, buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Whether each framed record's data CRC holds (_frame has checked their lengths' CRCs).

    A block of records is checked by one C call, as CRC-32C is affine: crc(m) = lin(m) ^
    crc(zeros of len(m)) with lin linear, and a message followed by its own lin (4 bytes, little
    endian) drives lin's register back to 0, as does any run of such words. A record is such a
    word, once its data CRC is replaced by unmask(stored) ^ _lin_fix(length), exactly when its
    data is intact (its length field and CRC are what its length makes them). So in a copy of
    the records so changed a block of intact records leaves lin at 0, and a corrupt one leaves
    it nonzero for good (lin's step over the bytes after it is invertible); for one record the
    check is exact. A block that fails is halved until its corrupt records stand alone.
    """
    ok = np.ones(len(starts), dtype=bool)
    if not len(starts):
        return ok
    lin_fix = _crc_tables()[1]
    fix = lin_fix[np.minimum(lengths, 255)]
    for i in np.flatnonzero(lengths > 255).tolist():
        fix[i] = _lin_fix(int(lengths[i]))
    crcs = _unaligned(buf, "<u4")
    crc_at = starts + 12 + lengths
    lin = _unmask(crcs[crc_at]) ^ fix
    offsets = np.arange(int(starts[0]), int(crc_at[-1]) + 4, _CRC_BLOCK_BYTES)
    firsts = np.unique(np.searchsorted(starts, offsets, side="right") - 1).tolist()  # records those lie in
    extend = google_crc32c.extend
    for i, j in pairwise([*firsts, len(starts)]):
        lo = int(starts[i])
        copy = buf[lo : int(crc_at[j - 1]) + 4].copy()
        slots = np.ndarray((len(copy) - 3,), dtype="<u4", buffer=copy, strides=(1,))
        slots[crc_at[i:j] - lo] = lin[i:j]
        pending = [(i, j)]
        while pending:  # a block that fails is halved until its corrupt records stand alone
            a, b = pending.pop()
            records = copy[int(starts[a]) - lo : int(crc_at[b - 1]) + 4 - lo].tobytes()
            if extend(0xFFFFFFFF, records) == 0xFFFFFFFF:  # the register starts at 0, comes back inverted
                continue
            if b - a == 1:
                ok[a] = False
            else:
                pending += [(a, (a + b) // 2), ((a + b) // 2, b)]
    return ok


@functools.cache
def _crc_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each data length below 256: the masked CRC of its u64 length field (what a record's
    header holds), and _lin_fix of it."""
    header = np.array([_masked(google_crc32c.value(_U64.pack(k))) for k in range(256)], dtype=np.uint32)
    return header, np.array([_lin_fix(k) for k in range(256)], dtype=np.uint32)


def _lin_fix(length: int) -> int:
    """What turns the CRC of a record's data into lin(its header and data), for the header of a
    record of that length: crc(zeros) ^ lin(header, then zeros) (see _check_crcs)."""
    field = _U64.pack(length)
    header = field + struct.pack("<I", _masked(google_crc32c.value(field)))
    lin_of_header = _with_zeros(google_crc32c.value(header), length) ^ _with_zeros(0, 12 + length)
    return _with_zeros(0, length) ^ lin_of_header


_ZEROS = bytes(1 << 16)


def _with_zeros(crc: int, count: int) -> int:
    """crc extended by count zero bytes, in slices (a record can be a few GB)."""
    for _ in range(count >> 16):
        crc = google_crc32c.extend(crc, _ZEROS)
    return google_crc32c.extend(crc, _ZEROS[: count & 0xFFFF])


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _unmask(masked: np.ndarray) -> np.ndarray:
    rotated = masked.astype(np.uint32) - np.uint32(_MASK_DELTA)  # wraps, as the mask's sum did
    return (rotated << np.uint32(15)) | (rotated >> np.uint32(17))


def _header_ok(data: bytes, at: int) -> bool:
    """Whether the 12 bytes at `at` are a length and its masked CRC."""
    return _masked(google_crc32c.value(data[at : at + 8])) == int.from_bytes(data[at + 8 : at + 12], "little")


def _resync(data: bytes, buf: np.ndarray, pos: int) -> int | None:
    """The first offset from pos on that holds a length whose CRC holds and whose record fits in
    the file, or None. Windows of offsets at a time: the next record is usually a few dozen
    bytes on, while a long stretch of garbage (zeros, random bytes) is scanned with numpy."""
    n = len(data)
    words, crcs = _unaligned(buf, "<u8"), _unaligned(buf, "<u4")
    header_crc = _crc_tables()[0]
    window = 4096
    while pos + 16 <= n:
        stop = min(pos + window, n - 15)
        at = np.arange(pos, stop, dtype=np.int64)
        length = words[at]
        fits = length <= (n - 16 - at).astype(np.uint64)
        at, length = at[fits], length[fits]
        short = length < 256
        passing = at[short & (crcs[at + 8] == header_crc[np.minimum(length, 255).astype(np.int64)])]
        found = int(passing[0]) if len(passing) else None
        for p in at[~short].tolist():  # rarer, each checked in C, in order up to a short one found
            if found is not None and p > found:
                break
            if _header_ok(data, p):
                found = p
                break
        if found is not None:
            return found
        pos = stop
        window = min(window * 4, 1 << 22)
    return None


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
    with np.errstate(invalid="ignore"):  # a signaling NaN's bit pattern widens quietly
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
        dtype = np.dtype(_TENSOR_DTYPES[dtype])
        if len(tensor.tensor_content) != dtype.itemsize:  # not one element (or a whole number of them)
            return None
        return float(np.frombuffer(tensor.tensor_content, dtype=dtype)[0])
    if dtype == 19 and len(tensor.half_val) == 1:  # half floats travel as uint16 bit patterns in an int32
        return float(np.array(tensor.half_val[0] & 0xFFFF, dtype=np.uint16).view(np.float16))
    for field_values in (tensor.float_val, tensor.double_val, tensor.int_val, tensor.int64_val):
        if len(field_values) == 1:
            return float(field_values[0])
    return None


def _wall_time_of(buf: np.ndarray, d0: int, d1: int) -> float:
    """The wall_time field leading an event's bytes (inf without one)."""
    if d1 - d0 >= 9 and buf[d0] == 0x09:
        return float(np.ascontiguousarray(buf[d0 + 1 : d0 + 9]).view("<f8")[0])
    return math.inf
