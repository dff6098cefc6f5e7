"""Test set-up: quiet offline Paddle/PaddleHub in a temp HUB_HOME and the ../shared data location (markers are
declared in pytest.ini)."""
import os
import pathlib
import struct
import tempfile
import warnings

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# the TF checkpoint fixture written by TensorFlow (converters/tools/make_tf_fixture.py): tests/fixtures/tf_electra_tiny
TF_FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "tf_electra_tiny")
TF_PREFIX = os.path.join(TF_FIXTURE, "electra_small")
_HUB_HOME = tempfile.mkdtemp(prefix="pe-test-hub-")
os.environ.setdefault("HUB_HOME", _HUB_HOME)
os.environ.setdefault("PPNLP_HOME", os.path.join(_HUB_HOME, "ppnlp"))
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore", message="No ccache found")


def shared_data_dir():
    """../shared/data beside the checkout (or $PADDLE_ELECTRA_SHARED_DATA), or None."""
    candidates = [os.environ.get("PADDLE_ELECTRA_SHARED_DATA"), REPO.parent / "shared" / "data"]
    for c in candidates:
        if c and pathlib.Path(c).is_dir():
            return pathlib.Path(c)
    return None


def small_pd_dataset(root, articles: int, vocab_size: int, max_seq_length: int = 32) -> pathlib.Path:
    """ROOT/data: a pretraining dataset of the first `articles` People's Daily articles, with its own vocab."""
    from pretrain.corpus import write_corpus
    from pretrain.data import BuildOptions, build_dataset
    root = pathlib.Path(root)
    write_corpus(str(root), heldout_fraction=0.0)
    small = root / "small.txt"
    documents = (root / "train.txt").read_text(encoding="utf-8").split("\n\n")[:articles]
    small.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    build_dataset([str(small)], root / "data", vocab_size=vocab_size,
                  options=BuildOptions(max_seq_length=max_seq_length), num_workers=0, progress=False)
    return root / "data"


def reference(module_name: str):
    """Import a reference implementation a comparison test checks us against (torch, transformers, PaddleNLP,
    scikit-learn, seqeval): skipped, with the reason, on a machine without it, but a failure under CI=true, where
    every reference test must run (all of them are pinned in setup.py)."""
    import importlib
    try:
        return importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any import failure of an optional stack means "not available"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: reference dependency {module_name} is not importable ({err!r})", pytrace=False)
        pytest.skip(f"{module_name} not importable: {err!r}", allow_module_level=True)


@pytest.fixture
def shared_data():
    path = shared_data_dir()
    if path is None:
        pytest.skip("needs ../shared/data (real benchmark data and the Chinese BERT vocab), absent on this checkout")
    return path



def varint(n: int) -> bytes:
    """LevelDB / protobuf base-128 varint."""
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def write_leveldb_table(path, items, per_block=None, restart_interval=1, compression=0):
    """Write `items` ((key, value) bytes, in the order given) as a LevelDB table, the format of a TF checkpoint's
    .index, with correct CRCs: data blocks of `per_block` entries (default: one block), a restart point every
    `restart_interval` entries (the keys in between share their prefix with the previous key), `compression` as each
    block's type byte. Tests re-encode the fixture's index with it to reach the reader's parsers past the checks."""
    from converters import tf_checkpoint as tfc
    out = bytearray()

    def block(entries):
        body, restarts, prev = bytearray(), [], b""
        for i, (key, value) in enumerate(entries):
            shared = 0
            if i % restart_interval:
                while shared < min(len(prev), len(key)) and prev[shared] == key[shared]:
                    shared += 1
            else:
                restarts.append(len(body))
            body += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
            prev = key
        body += b"".join(struct.pack("<I", r) for r in restarts or [0]) + struct.pack("<I", len(restarts or [0]))
        handle = varint(len(out)) + varint(len(body))
        trailer = bytes([compression])
        out.extend(body + trailer + struct.pack("<I", tfc.mask_crc(tfc.crc32c(bytes(body) + trailer))))
        return handle

    size = per_block or max(1, len(items))
    index = [(chunk[-1][0], block(chunk)) for chunk in (items[i:i + size] for i in range(0, len(items), size))]
    footer = block([]) + block(index)
    out.extend(footer + bytes(40 - len(footer)) + struct.pack("<Q", 0xDB4775248B80FB57))
    with open(path, "wb") as f:
        f.write(bytes(out))
