"""Test set-up: quiet offline Paddle/PaddleHub in a temp HUB_HOME and the ../shared data location (markers are
declared in pytest.ini)."""
import os
import pathlib
import tempfile
import warnings

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
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

