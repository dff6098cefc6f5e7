"""The TF checkpoint reader against a checkpoint TensorFlow itself wrote (tests/fixtures/tf_electra_tiny)."""
import os
import shutil

import numpy as np
import pytest

from conftest import TF_FIXTURE, write_leveldb_table
from converters import tf_checkpoint as tfc
from paddle_electra.errors import WeightsError

FIXTURE = TF_FIXTURE
PREFIX = os.path.join(FIXTURE, "electra_small")
EXTRA = os.path.join(FIXTURE, "extra_dtypes")
DATA = ".data-00000-of-00001"


def _load_expected(folder):
    with np.load(os.path.join(folder, "expected.npz"), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _assert_bitwise_equal(got, expected):
    assert sorted(got) == sorted(expected)
    for name, want in expected.items():
        have = got[name].astype(np.bytes_) if got[name].dtype == object else got[name]
        assert have.dtype == want.dtype and have.shape == want.shape, name
        assert have.tobytes() == want.tobytes(), name


@pytest.fixture
def ckpt_copy(tmp_path):
    """A private copy of the fixture checkpoint, safe to corrupt; returns its prefix."""
    for suffix in (".index", DATA):
        shutil.copy(PREFIX + suffix, tmp_path / ("electra_small" + suffix))
    shutil.copy(os.path.join(FIXTURE, "checkpoint"), tmp_path / "checkpoint")
    return str(tmp_path / "electra_small")


# ------------------------------------------------------------------------------------ reading what TF wrote
def test_reads_every_tensor_bitwise_as_tensorflow_does():
    got = tfc.read_checkpoint(PREFIX)
    _assert_bitwise_equal(got, _load_expected(FIXTURE))
    assert got["global_step"].dtype == np.int64 and got["global_step"] == 12345
    assert got["electra/embeddings/word_embeddings"].flags.writeable


def test_list_variables_names_dtypes_and_shapes():
    variables = tfc.list_variables(PREFIX)
    expected = _load_expected(FIXTURE)
    assert variables == {name: (str(a.dtype), a.shape) for name, a in expected.items()}
    # spot-check the official layout: both embedding projections and the Adam slots are there
    assert variables["electra/embeddings_project/kernel"] == ("float32", (16, 32))
    assert variables["generator/embeddings_project/kernel"] == ("float32", (16, 8))
    assert variables["generator_predictions/output_bias/adam_v"] == ("float32", (99,))
    assert list(variables) == sorted(variables)


def test_extra_dtypes_including_bfloat16_and_strings():
    got = tfc.read_checkpoint(EXTRA)
    _assert_bitwise_equal(got, _load_expected(EXTRA))
    variables = tfc.list_variables(EXTRA)
    assert variables["bfloat16"] == ("bfloat16", (4, 3)) and got["bfloat16"].dtype == np.float32
    assert variables["string"] == ("string", (2, 2))
    assert got["string"][1, 0].decode("utf-8") == "\u4eca\u5929\u5929\u6c14" and got["string"][1, 1] == b"x" * 300
    assert got["scalar"].shape == () and got["empty"].shape == (0, 4)


def test_names_and_skip_select_tensors():
    got = tfc.read_checkpoint(PREFIX, skip=lambda n: n.endswith(("/adam_m", "/adam_v")) or n == "global_step")
    assert len(got) == len(tfc.list_variables(PREFIX)) - 7
    assert not any("adam" in n for n in got)
    one = tfc.read_checkpoint(PREFIX, names=["electra/embeddings/LayerNorm/gamma"])
    assert list(one) == ["electra/embeddings/LayerNorm/gamma"]
    with pytest.raises(WeightsError, match="no_such_variable"):
        tfc.read_checkpoint(PREFIX, names=["no_such_variable"])


# ------------------------------------------------------------------------------------ resolving the prefix
def test_resolve_prefix_from_directory_prefix_and_files():
    for path in (FIXTURE, PREFIX, PREFIX + ".index", PREFIX + DATA, PREFIX + ".meta"):
        assert tfc.resolve_checkpoint_prefix(path) == PREFIX


def test_resolve_directory_without_checkpoint_file_uses_single_index(ckpt_copy, tmp_path):
    os.remove(tmp_path / "checkpoint")
    assert tfc.resolve_checkpoint_prefix(tmp_path) == ckpt_copy
    shutil.copy(ckpt_copy + ".index", tmp_path / "other.index")
    with pytest.raises(WeightsError, match="found 2"):
        tfc.resolve_checkpoint_prefix(tmp_path)


def test_resolve_checkpoint_file_with_trainer_absolute_path(ckpt_copy, tmp_path):
    # released zips record the trainer's path; the same file name next to `checkpoint` is used instead
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/gcs/run7/electra_small"\n')
    assert tfc.resolve_checkpoint_prefix(tmp_path) == ckpt_copy
    octal = "".join(f"\\{b:03o}" for b in "/训练/electra_small".encode("utf-8"))  # text-format byte escapes
    for recorded in (octal, "/训练/electra_small"):
        (tmp_path / "checkpoint").write_text(f'model_checkpoint_path: "{recorded}"\n', encoding="utf-8")
        assert tfc.resolve_checkpoint_prefix(tmp_path) == ckpt_copy
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-100"\n')
    with pytest.raises(WeightsError, match="model.ckpt-100"):
        tfc.resolve_checkpoint_prefix(tmp_path)


def test_resolve_missing_path(tmp_path):
    with pytest.raises(WeightsError, match="no TensorFlow checkpoint"):
        tfc.resolve_checkpoint_prefix(tmp_path / "nothing")
    with pytest.raises(WeightsError, match="found 0"):
        tfc.resolve_checkpoint_prefix(tmp_path)


# ------------------------------------------------------------------------------------ damaged checkpoints
def _entry(prefix, name):
    return tfc._load_bundle(prefix).entries[name]


def test_flipped_data_byte_names_the_variable(ckpt_copy):
    name = "electra/encoder/layer_1/attention/self/key/kernel"
    entry = _entry(ckpt_copy, name)
    with open(ckpt_copy + DATA, "r+b") as f:
        f.seek(entry.offset + 17)
        byte = f.read(1)
        f.seek(entry.offset + 17)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(WeightsError, match="crc32c mismatch") as err:
        tfc.read_checkpoint(ckpt_copy)
    assert name in str(err.value) and DATA in str(err.value)
    # the check is what caught it: without it the damaged tensor reads back different
    damaged = tfc.read_checkpoint(ckpt_copy, names=[name], verify_crc=False)[name]
    assert damaged.tobytes() != _load_expected(FIXTURE)[name].tobytes()


def test_truncated_data_file(ckpt_copy):
    size = os.path.getsize(ckpt_copy + DATA)
    os.truncate(ckpt_copy + DATA, size // 2)
    with pytest.raises(WeightsError, match="truncated checkpoint") as err:
        tfc.read_checkpoint(ckpt_copy)
    assert DATA in str(err.value) and "variable '" in str(err.value)


def test_missing_data_shard(ckpt_copy):
    os.remove(ckpt_copy + DATA)
    assert len(tfc.list_variables(ckpt_copy)) == 89  # only the index is needed to list
    with pytest.raises(WeightsError, match="data shard is missing"):
        tfc.read_checkpoint(ckpt_copy)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_truncated_or_garbage_index(ckpt_copy, damage):
    index = ckpt_copy + ".index"
    data = open(index, "rb").read()
    new = {"truncate": data[:-10], "garbage": np.random.RandomState(0).bytes(len(data)), "empty": b""}[damage]
    with open(index, "wb") as f:
        f.write(new)
    with pytest.raises(WeightsError, match="bad magic") as err:
        tfc.list_variables(ckpt_copy)
    assert index in str(err.value)


def test_corrupt_index_block(ckpt_copy):
    index = ckpt_copy + ".index"
    data = bytearray(open(index, "rb").read())
    data[200] ^= 0x40  # inside the data block, footer intact
    open(index, "wb").write(bytes(data))
    with pytest.raises(WeightsError, match="corrupt checkpoint index.*crc32c mismatch"):
        tfc.list_variables(ckpt_copy)


# ------------------------------------------------------------------------------------ re-encoded index tables
def _index_items():
    return list(tfc._read_table(PREFIX + ".index"))


def test_multi_block_index_reads_the_same(ckpt_copy):
    items = _index_items()
    assert len(items) == 90  # the header entry plus 89 tensors
    write_leveldb_table(ckpt_copy + ".index", items, per_block=7, restart_interval=2)
    _assert_bitwise_equal(tfc.read_checkpoint(ckpt_copy), _load_expected(FIXTURE))


def test_compressed_index_is_refused(ckpt_copy):
    write_leveldb_table(ckpt_copy + ".index", _index_items(), per_block=7, restart_interval=2, compression=1)
    with pytest.raises(WeightsError, match="snappy-compressed index blocks are not supported"):
        tfc.list_variables(ckpt_copy)


def test_unknown_dtype_and_byte_order_are_refused(ckpt_copy):
    items = _index_items()
    name = b"global_step"
    items = [(k, b"\x08\x14" + v[2:] if k == name else v) for k, v in items]  # dtype 20 = DT_RESOURCE
    write_leveldb_table(ckpt_copy + ".index", items, per_block=50, restart_interval=2)
    with pytest.raises(WeightsError, match="'global_step' has unsupported TF dtype enum 20"):
        tfc.list_variables(ckpt_copy)
    items = [(k, v + b"\x10\x01" if k == b"" else v) for k, v in _index_items()]  # endianness = BIG
    write_leveldb_table(ckpt_copy + ".index", items, per_block=50, restart_interval=2)
    with pytest.raises(WeightsError, match="big-endian checkpoints are not supported"):
        tfc.list_variables(ckpt_copy)


def test_unsorted_index_keys_are_refused(ckpt_copy):
    items = _index_items()
    items[5], items[6] = items[6], items[5]
    write_leveldb_table(ckpt_copy + ".index", items, per_block=50, restart_interval=2)
    with pytest.raises(WeightsError, match="keys are not in increasing order"):
        tfc.list_variables(ckpt_copy)


# ------------------------------------------------------------------------------------ crc32c
def test_crc32c_known_value_and_fallback_agrees():
    assert tfc.crc32c_python(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    data = np.random.RandomState(3).bytes(4099)
    assert tfc.crc32c_python(data) == tfc.crc32c(data)
    assert tfc.crc32c_python(data[1000:], tfc.crc32c_python(data[:1000])) == tfc.crc32c(data)


def test_pure_python_crc_path_reads_the_fixture(monkeypatch):
    monkeypatch.setattr(tfc, "crc32c", tfc.crc32c_python)
    _assert_bitwise_equal(tfc.read_checkpoint(PREFIX), _load_expected(FIXTURE))
    _assert_bitwise_equal(tfc.read_checkpoint(EXTRA), _load_expected(EXTRA))
