"""The merge's per-row work, compiled with numba: normalizing and hashing lines straight from their UTF-8 bytes,
writing bucket records, and deduplicating a bucket.

Normalization is merge.normalize (case folded; every run of characters other than letters and digits one
space; none at the ends), computed per code point from a table built with Python's own `casefold` and `\\w`, so
the two agree on every character of the Basic Multilingual Plane (tests/test_merge.py checks all of them). A line
holding a character beyond it (emoji, rare CJK) is normalized by merge.normalize in Python instead and hashed by
the same function, so its key is the same either way.

Keys are 64-bit hashes (xxHash64's round and avalanche) of the normalized text, seeded: the row's key combines
its sides' hashes. A bucket record is a fixed header (dataset index, -1 for a row that only excludes; key; the
byte length of each side) followed by the sides' bytes.
"""

import re

import numpy as np
from numba import njit

P1 = np.uint64(0x9E3779B185EBCA87)
P2 = np.uint64(0xC2B2AE3D27D4EB4F)
P3 = np.uint64(0x165667B19E3779F9)
P4 = np.uint64(0x85EBCA77C2B2AE63)
P5 = np.uint64(0x27D4EB2F165667C5)
HEADER = 20  # int32 dataset, uint64 key, uint32 bytes of each of two sides
EXCLUDE = -1  # the dataset index of a row that only excludes its key
# status of a row in a merged bucket
KEPT, IN_PARALLEL, EXACT, NORMALIZED, MARKER = 0, 1, 2, 3, 4
# flags of a hashed line
EMPTY, BLANK, BEYOND_BMP = 1, 2, 4

_WORD = re.compile(r"[^\W_]")


def normalization_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, bytes, is_space): code point c of the BMP becomes bytes[offsets[c]:offsets[c + 1]], the UTF-8
    of its case folding with every character other than a letter or digit a space; is_space[c] is str.isspace."""
    pieces = []
    for code in range(0x10000):
        if 0xD800 <= code < 0xE000:  # surrogates: never in valid UTF-8
            pieces.append(b" ")
            continue
        folded = chr(code).casefold()
        if len(folded) == 1:
            pieces.append(folded.encode() if _WORD.match(folded) else b" ")
        else:
            pieces.append("".join(c if _WORD.match(c) else " " for c in folded).encode())
    offsets = np.zeros(0x10001, dtype=np.int32)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    table = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    is_space = np.array([chr(c).isspace() for c in range(0x10000)], dtype=np.bool_)
    return offsets, table, is_space


@njit(cache=True, inline="always")
def _rotl(x, bits):
    return (x << np.uint64(bits)) | (x >> np.uint64(64 - bits))


@njit(cache=True, inline="always")
def _round(h, word):
    h ^= _rotl(word * P2, 31) * P1
    return _rotl(h, 27) * P1 + P4


@njit(cache=True, inline="always")
def _avalanche(h):
    h ^= h >> np.uint64(33)
    h *= P2
    h ^= h >> np.uint64(29)
    h *= P3
    h ^= h >> np.uint64(32)
    return h


@njit(cache=True, inline="always")
def _emit(h, word, filled, byte):
    """One byte into the hash: bytes fill a little-endian 64-bit word, which is mixed in once full."""
    word |= np.uint64(byte) << np.uint64(8 * filled)
    filled += 1
    if filled == 8:
        return _round(h, word), np.uint64(0), 0
    return h, word, filled


@njit(cache=True, inline="always")
def _finish(h, word, filled, length):
    if filled:
        h = _round(h, word)
    return _avalanche(h ^ np.uint64(length))


@njit(cache=True, nogil=True)
def hash_bytes(data, seed):
    """The hash of already normalized bytes, as hash_lines computes it for a line normalizing to them."""
    h = seed + P5
    word = np.uint64(0)
    filled = 0
    for p in range(len(data)):
        h, word, filled = _emit(h, word, filled, data[p])
    return _finish(h, word, filled, len(data))


@njit(cache=True, nogil=True)
def hash_lines(data, starts, ends, offsets, table, is_space, seed, hashes, flags):
    """hashes[i]: the hash of line i's (data[starts[i]:ends[i]], valid UTF-8) normalized form; flags[i]: EMPTY
    if that is empty, BLANK if the line is whitespace only, BEYOND_BMP if it holds a character beyond the BMP
    (then hashes[i] is not computed)."""
    space = np.uint8(32)
    for i in range(len(starts)):
        p, end = starts[i], ends[i]
        h = seed + P5
        word = np.uint64(0)
        filled = 0
        length = 0
        pending = False
        blank = True
        beyond = False
        while p < end:
            b0 = np.int64(data[p])
            if b0 < 0x80:
                code = b0
                p += 1
            elif b0 < 0xE0:
                code = ((b0 & 0x1F) << 6) | (np.int64(data[p + 1]) & 0x3F)
                p += 2
            elif b0 < 0xF0:
                code = (
                    ((b0 & 0x0F) << 12)
                    | ((np.int64(data[p + 1]) & 0x3F) << 6)
                    | (np.int64(data[p + 2]) & 0x3F)
                )
                p += 3
            else:
                beyond = True
                break
            if blank and not is_space[code]:
                blank = False
            for q in range(offsets[code], offsets[code + 1]):
                byte = table[q]
                if byte == space:
                    pending = length > 0
                    continue
                if pending:
                    h, word, filled = _emit(h, word, filled, space)
                    length += 1
                    pending = False
                h, word, filled = _emit(h, word, filled, byte)
                length += 1
        if beyond:
            flags[i] = BEYOND_BMP
            hashes[i] = 0
            continue
        hashes[i] = _finish(h, word, filled, length)
        flags[i] = (EMPTY if length == 0 else 0) | (BLANK if blank else 0)


@njit(cache=True, nogil=True)
def combine(first, second):
    """Row keys of two-sided rows from their sides' hashes (order matters)."""
    keys = np.empty(len(first), dtype=np.uint64)
    for i in range(len(first)):
        keys[i] = _avalanche(first[i] ^ (_rotl(second[i], 23) * P2 + P3))
    return keys


@njit(cache=True, inline="always")
def _put_u32(out, at, value):
    for b in range(4):
        out[at + b] = np.uint8((value >> (8 * b)) & 0xFF)


@njit(cache=True, inline="always")
def _get_u32(data, at):
    value = np.int64(0)
    for b in range(4):
        value |= np.int64(data[at + b]) << (8 * b)
    return value


@njit(cache=True, nogil=True)
def bucket_records(dataset, keys, row_buckets, data0, starts0, ends0, data1, starts1, ends1, width, buckets):
    """The records of the rows with row_buckets[i] >= 0, grouped by bucket in row order within each, and where
    each bucket's records start (buckets + 1 offsets). width 0 writes keys only (rows that exclude)."""
    sizes = np.zeros(buckets + 1, dtype=np.int64)
    for i in range(len(keys)):
        bucket = row_buckets[i]
        if bucket < 0:
            continue
        size = HEADER
        if width >= 1:
            size += ends0[i] - starts0[i]
        if width >= 2:
            size += ends1[i] - starts1[i]
        sizes[bucket + 1] += size
    bounds = np.cumsum(sizes)
    at = bounds[:-1].copy()
    out = np.empty(bounds[-1], dtype=np.uint8)
    for i in range(len(keys)):
        bucket = row_buckets[i]
        if bucket < 0:
            continue
        p = at[bucket]
        _put_u32(out, p, np.int64(dataset) & 0xFFFFFFFF)
        key = keys[i]
        for b in range(8):
            out[p + 4 + b] = np.uint8((key >> np.uint64(8 * b)) & np.uint64(0xFF))
        n0 = ends0[i] - starts0[i] if width >= 1 else 0
        n1 = ends1[i] - starts1[i] if width >= 2 else 0
        _put_u32(out, p + 12, n0)
        _put_u32(out, p + 16, n1)
        p += HEADER
        out[p : p + n0] = data0[starts0[i] : starts0[i] + n0]
        p += n0
        out[p : p + n1] = data1[starts1[i] : starts1[i] + n1]
        at[bucket] = p + n1
    return out, bounds


@njit(cache=True, nogil=True)
def parse_records(data):
    """(dataset, key, start of side 0, its length, start of side 1, its length) of each record of a bucket."""
    count = 0
    p = 0
    while p < len(data):
        p += HEADER + _get_u32(data, p + 12) + _get_u32(data, p + 16)
        count += 1
    dataset = np.empty(count, dtype=np.int32)
    keys = np.empty(count, dtype=np.uint64)
    start0, length0 = np.empty(count, dtype=np.int64), np.empty(count, dtype=np.int64)
    start1, length1 = np.empty(count, dtype=np.int64), np.empty(count, dtype=np.int64)
    p = 0
    for i in range(count):
        value = _get_u32(data, p)
        dataset[i] = value - (1 << 32) if value >= (1 << 31) else value
        key = np.uint64(0)
        for b in range(8):
            key |= np.uint64(data[p + 4 + b]) << np.uint64(8 * b)
        keys[i] = key
        length0[i], length1[i] = _get_u32(data, p + 12), _get_u32(data, p + 16)
        start0[i] = p + HEADER
        start1[i] = start0[i] + length0[i]
        p = start1[i] + length1[i]
    return dataset, keys, start0, length0, start1, length1


@njit(cache=True, inline="always")
def _same_bytes(data, a, b, length):
    return np.array_equal(data[a : a + length], data[b : b + length])


@njit(cache=True, nogil=True)
def classify(order, dataset, keys, data, start0, length0, start1, length1):
    """The status of each record: records are visited by key (`order`, stable, so in bucket order within a
    key). A key that a row marked EXCLUDE holds is IN_PARALLEL wherever it appears; otherwise the first row
    with a key is KEPT, and a later one is an EXACT duplicate if its sides are the same bytes, NORMALIZED if
    not."""
    status = np.empty(len(keys), dtype=np.int8)
    group = 0
    while group < len(order):
        end = group
        excluded = False
        while end < len(order) and keys[order[end]] == keys[order[group]]:
            if dataset[order[end]] == EXCLUDE:
                excluded = True
            end += 1
        first = -1
        for k in range(group, end):
            row = order[k]
            if dataset[row] == EXCLUDE:
                status[row] = MARKER
            elif excluded:
                status[row] = IN_PARALLEL
            elif first < 0:
                first = row
                status[row] = KEPT
            elif (
                length0[row] == length0[first]
                and length1[row] == length1[first]
                and _same_bytes(data, start0[row], start0[first], length0[row])
                and _same_bytes(data, start1[row], start1[first], length1[row])
            ):
                status[row] = EXACT
            else:
                status[row] = NORMALIZED
        group = end
    return status


@njit(cache=True, nogil=True)
def gather_lines(data, starts, lengths, rows):
    """The lines of `rows` (in that order), each ending in a line break; a tab inside a line becomes a space
    (merged corpora feed tab-separated training input)."""
    total = 0
    for row in rows:
        total += lengths[row] + 1
    out = np.empty(total, dtype=np.uint8)
    p = 0
    for row in rows:
        start = starts[row]
        for k in range(lengths[row]):
            byte = data[start + k]
            out[p + k] = 32 if byte == 9 else byte
        p += lengths[row]
        out[p] = 10
        p += 1
    return out
