"""Read TensorFlow V2 checkpoints (tensor bundles) with numpy alone, no TensorFlow or protobuf needed.

A checkpoint `<prefix>` is `<prefix>.index`, an SSTable (LevelDB table format) mapping each variable name to a
serialized `BundleEntryProto`, plus data shards `<prefix>.data-SSSSS-of-NNNNN` holding the raw tensor bytes.
The empty key holds a `BundleHeaderProto` (shard count, endianness). Every tensor carries a masked crc32c of its
bytes, checked here on read.

dtypes: numeric tensors keep their dtype, except bfloat16, which numpy lacks: it is widened to float32 exactly
(the 16 stored bits become the high half of the float32), while `list_variables` still reports "bfloat16".
String tensors come back as numpy object arrays of `bytes`.
"""
import codecs
import glob
import os
import re
import struct
from collections import namedtuple

import numpy as np

from paddle_electra.errors import WeightsError

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48  # two block handles padded to 40 bytes + 8-byte magic
_BLOCK_TRAILER_LEN = 5  # 1 byte compression type + 4 bytes masked crc32c
_CRC_MASK_DELTA = 0xA282EAD8

# TF DataType enum -> (name, little-endian numpy dtype); None marks the variable-length string encoding.
_DTYPES = {
    1: ("float32", "<f4"), 2: ("float64", "<f8"), 3: ("int32", "<i4"), 4: ("uint8", "|u1"), 5: ("int16", "<i2"),
    6: ("int8", "|i1"), 7: ("string", None), 8: ("complex64", "<c8"), 9: ("int64", "<i8"), 10: ("bool", "|b1"),
    14: ("bfloat16", "<u2"), 17: ("uint16", "<u2"), 18: ("complex128", "<c16"), 19: ("float16", "<f2"),
    22: ("uint32", "<u4"), 23: ("uint64", "<u8"),
}

_Entry = namedtuple("_Entry", "dtype shape shard_id offset size crc32c sliced")


# ---------------------------------------------------------------------------------------------- crc32c (Castagnoli)
def _make_crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _make_crc_table()


def crc32c_python(data, crc=0):
    """Table-driven crc32c of `data`, extending `crc`; slow (~10 MB/s) but dependency-free."""
    table = _CRC_TABLE
    crc ^= 0xFFFFFFFF
    for byte in memoryview(data).cast("B"):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # a C implementation is ~1000x faster; both give the same numbers
    import crc32c as _crc32c_pkg

    def crc32c(data, crc=0):
        """crc32c of `data`, extending `crc` (uses the `crc32c` package)."""
        return _crc32c_pkg.crc32c(data, crc)
except ImportError:
    try:
        import google_crc32c as _google_crc32c

        def crc32c(data, crc=0):
            """crc32c of `data`, extending `crc` (uses the `google-crc32c` package)."""
            return _google_crc32c.extend(crc, bytes(data))
    except ImportError:
        crc32c = crc32c_python


def mask_crc(crc):
    """LevelDB/TF crc masking: rotate right 15 bits and add a constant, so crcs of crcs stay well-mixed."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------- wire formats
class _Malformed(Exception):
    """Internal: a structure is inconsistent; callers re-raise it as WeightsError with file and variable."""


def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed("varint longer than 10 bytes")


def _signed64(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def _proto_fields(buf):
    """Yield (field_number, value) of a protobuf message: ints for varints, bytes for the other wire types."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 2, 5):
            if wire == 2:
                n, pos = _varint(buf, pos)
            else:
                n = 8 if wire == 1 else 4
            value, pos = bytes(buf[pos:pos + n]), pos + n
            if pos > len(buf):
                raise _Malformed("truncated protobuf field")
        else:
            raise _Malformed(f"unsupported protobuf wire type {wire} (field {field})")
        yield field, value


def _as(kind, value, what):
    """`value` if it has the wire type the schema gives the field (varint int or length-delimited bytes)."""
    if not isinstance(value, kind):
        raise _Malformed(f"{what} has the wrong protobuf wire type")
    return value


def _parse_shape(buf):
    dims = []
    for field, value in _proto_fields(_as(bytes, buf, "the tensor shape")):
        if field == 2:  # repeated Dim dim; Dim.size is field 1
            dims.append(next((_signed64(_as(int, v, "a dimension size")) for f, v in
                              _proto_fields(_as(bytes, value, "a dimension")) if f == 1), 0))
        elif field == 3 and value:
            raise _Malformed("tensor shape of unknown rank")
    if any(d < 0 for d in dims):
        raise _Malformed(f"tensor shape with unknown dimension {dims}")
    return tuple(dims)


def _parse_entry(buf):
    fields = {1: 0, 2: b"", 3: 0, 4: 0, 5: 0, 6: b"\0\0\0\0"}  # proto3 defaults
    sliced = False
    for field, value in _proto_fields(buf):
        if field == 7:
            sliced = True
        elif field in fields:
            fields[field] = value
    if not isinstance(fields[6], bytes) or len(fields[6]) != 4:
        raise _Malformed("crc32c field is not fixed32")
    number = {f: _signed64(_as(int, fields[f], name)) for f, name in
              ((1, "dtype"), (3, "shard_id"), (4, "offset"), (5, "size"))}
    return _Entry(number[1], _parse_shape(fields[2]), number[3], number[4], number[5],
                  struct.unpack("<I", fields[6])[0], sliced)


# ---------------------------------------------------------------------------------------------- the .index SSTable
def _read_block(data, offset, size):
    end = offset + size
    if end + _BLOCK_TRAILER_LEN > len(data) - _FOOTER_LEN:
        raise _Malformed(f"block at offset {offset} (size {size}) runs past the end of the file")
    stored = struct.unpack("<I", data[end + 1:end + 5])[0]
    if mask_crc(crc32c(data[offset:end + 1])) != stored:  # the crc covers the contents and the type byte
        raise _Malformed(f"block at offset {offset}: crc32c mismatch")
    kind = data[end]
    if kind == 1:
        raise _Malformed("snappy-compressed index blocks are not supported (TF writes bundles uncompressed)")
    if kind != 0:
        raise _Malformed(f"unknown block compression type {kind}")
    return data[offset:end]


def _block_entries(block):
    """Yield (key, value) of a block: prefix-compressed keys followed by a restart-offset array."""
    if len(block) < 4:
        raise _Malformed("block shorter than its restart count")
    num_restarts = struct.unpack("<I", block[-4:])[0]
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise _Malformed("restart array larger than its block")
    pos, key, first = 0, b"", True
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise _Malformed(f"bad block entry at byte {pos}")
        new_key = key[:shared] + block[pos:pos + unshared]
        if not first and new_key <= key:
            raise _Malformed("keys are not in increasing order")
        key, first = new_key, False
        pos += unshared
        yield key, block[pos:pos + value_len]
        pos += value_len


def _read_table(path):
    with open(path, "rb") as f:
        data = f.read()  # an index is small: names and ~30-byte entries
    if len(data) < _FOOTER_LEN or int.from_bytes(data[-8:], "little") != _TABLE_MAGIC:
        raise _Malformed("bad magic number: not a TensorFlow checkpoint index (or truncated)")
    footer = data[-_FOOTER_LEN:]
    _, pos = _varint(footer, 0)  # metaindex block handle: TF leaves the meta block empty
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    for _, handle in _block_entries(_read_block(data, index_offset, index_size)):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        yield from _block_entries(_read_block(data, offset, size))


# ---------------------------------------------------------------------------------------------- bundle
_Bundle = namedtuple("_Bundle", "prefix num_shards entries")


def resolve_checkpoint_prefix(path):
    """Return the checkpoint prefix for a directory (via its `checkpoint` file or single .index), a prefix, or a file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        state = os.path.join(path, "checkpoint")
        if os.path.isfile(state):
            with open(state, encoding="utf-8", errors="replace") as f:
                match = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', f.read(), re.M)
            if not match:
                raise WeightsError(f"{state}: no model_checkpoint_path line")
            # Text-format writers may escape path bytes (\350\256...) or keep UTF-8 (TF 2.21): handle both.
            recorded = codecs.escape_decode(match.group(1).encode("utf-8"))[0].decode("utf-8", "replace")
            # Released checkpoints often record the trainer's absolute path: fall back to the same name here.
            for prefix in (os.path.join(path, recorded), os.path.join(path, os.path.basename(recorded))):
                if os.path.isfile(prefix + ".index"):
                    return prefix
            raise WeightsError(f"{state}: model_checkpoint_path {recorded!r} has no .index file in {path}")
        found = sorted(glob.glob(os.path.join(glob.escape(path), "*.index")))
        if len(found) != 1:
            raise WeightsError(f"{path}: expected one *.index file (or a `checkpoint` file), found {len(found)}")
        return found[0][:-len(".index")]
    prefix = re.sub(r"\.(index|meta|data-\d{5}-of-\d{5})$", "", path)
    if os.path.isfile(prefix + ".index"):
        return prefix
    raise WeightsError(f"{path}: no TensorFlow checkpoint here ({prefix}.index does not exist)")


def _load_bundle(path):
    prefix = resolve_checkpoint_prefix(path)
    index = prefix + ".index"
    header, entries, key = None, {}, b""
    try:
        for key, value in _read_table(index):
            if not key:
                header = dict(_proto_fields(value))
            elif key[0] != 0:  # keys starting with \x00 hold slices of partitioned variables
                entries[key.decode("utf-8")] = _parse_entry(value)
    except (_Malformed, UnicodeDecodeError) as e:
        where = f" (at key {key.decode('utf-8', 'replace')!r})" if key else ""
        raise WeightsError(f"{index}: corrupt checkpoint index{where}: {e}") from None
    if header is None:
        raise WeightsError(f"{index}: no bundle header entry (not a V2 checkpoint?)")
    if not all(isinstance(header.get(f, 0), int) for f in (1, 2)):
        raise WeightsError(f"{index}: corrupt bundle header (num_shards / endianness of the wrong wire type)")
    num_shards = _signed64(header.get(1, 0))
    if header.get(2, 0) != 0:  # every machine TF's checkpoints come from is little-endian
        raise WeightsError(f"{index}: big-endian checkpoints are not supported")
    for name, entry in entries.items():
        if entry.dtype not in _DTYPES:
            raise WeightsError(f"{index}: variable {name!r} has unsupported TF dtype enum {entry.dtype}")
        if not 0 <= entry.shard_id < num_shards or entry.offset < 0 or entry.size < 0:
            raise WeightsError(f"{index}: variable {name!r} has shard {entry.shard_id} of {num_shards}, "
                               f"offset {entry.offset}, size {entry.size}")
    return _Bundle(prefix, num_shards, entries)


def list_variables(path):
    """Map each variable name to (dtype name, shape tuple), in the index's sorted order."""
    bundle = _load_bundle(path)
    return {name: (_DTYPES[e.dtype][0], e.shape) for name, e in bundle.entries.items()}


def _decode_strings(buf, count, shape):
    """Decode TF's string tensor layout: varint lengths, masked crc32c of the lengths, then the bytes."""
    lengths, pos, crc = [], 0, 0
    for _ in range(count):
        n, pos = _varint(buf, pos)
        lengths.append(n)
        crc = crc32c(struct.pack("<I" if n <= 0xFFFFFFFF else "<Q", n), crc)  # TF checksums fixed-width lengths
    if buf[pos:pos + 4] != struct.pack("<I", mask_crc(crc)) or pos + 4 + sum(lengths) != len(buf):
        raise _Malformed("string lengths do not match their checksum or the entry size")
    crc, pos = crc32c(buf[pos:pos + 4], crc), pos + 4
    crc = crc32c(buf[pos:], crc)
    out = np.empty(count, dtype=object)
    for i, n in enumerate(lengths):
        out[i] = bytes(buf[pos:pos + n])
        pos += n
    return out.reshape(shape), crc


def _read_tensor(bundle, name, entry, verify_crc):
    data_path = f"{bundle.prefix}.data-{entry.shard_id:05d}-of-{bundle.num_shards:05d}"
    where = f"{data_path}: variable {name!r}"
    if entry.sliced:
        raise WeightsError(f"{where}: partitioned (sliced) variables are not supported")
    if not os.path.isfile(data_path):
        raise WeightsError(f"{where}: data shard is missing")
    if entry.offset + entry.size > os.path.getsize(data_path):
        raise WeightsError(f"{where}: bytes {entry.offset}..{entry.offset + entry.size} lie past the end of "
                           f"the file ({os.path.getsize(data_path)} bytes): truncated checkpoint")
    buf = bytearray(entry.size)
    with open(data_path, "rb") as f:
        f.seek(entry.offset)
        f.readinto(buf)
    dtype_name, code = _DTYPES[entry.dtype]
    count = int(np.prod(entry.shape, dtype=np.int64))
    if code is None:
        try:
            array, crc = _decode_strings(buf, count, entry.shape)
        except _Malformed as e:
            raise WeightsError(f"{where}: {e}") from None
    else:
        dtype = np.dtype(code)
        if entry.size != count * dtype.itemsize:
            raise WeightsError(f"{where}: {entry.size} bytes do not hold {dtype_name} of shape {entry.shape}")
        crc = crc32c(buf) if verify_crc else None
        array = np.frombuffer(buf, dtype=dtype).reshape(entry.shape)  # owns `buf`: no second copy
        if dtype_name == "bfloat16":  # bfloat16 is the top half of a float32: widening is exact
            array = (array.astype(np.uint32) << 16).view(np.float32)
    if verify_crc and mask_crc(crc) != entry.crc32c:
        raise WeightsError(f"{where}: crc32c mismatch (stored {entry.crc32c:#010x}, computed {mask_crc(crc):#010x}): "
                           "corrupt data file")
    return array


def read_checkpoint(path, names=None, skip=None, verify_crc=True):
    """Read tensors as {name: np.ndarray}: all of them, or `names`, minus those where `skip(name)` is true."""
    bundle = _load_bundle(path)
    if names is None:
        names = list(bundle.entries)
    else:
        missing = [n for n in names if n not in bundle.entries]
        if missing:
            raise WeightsError(f"{bundle.prefix}.index: no variable(s) {missing}")
    return {name: _read_tensor(bundle, name, bundle.entries[name], verify_crc)
            for name in names if skip is None or not skip(name)}
