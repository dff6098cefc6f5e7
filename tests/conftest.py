"""Test set-up: quiet offline Paddle/PaddleHub in a temp HUB_HOME, markers, and the ../shared data location."""
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
    candidates = [os.environ.get("PADDLE_ELECTRA_SHARED_DATA"), REPO.parent / "shared" / "data", "/work/shared/data"]
    for c in candidates:
        if c and pathlib.Path(c).is_dir():
            return pathlib.Path(c)
    return None


@pytest.fixture
def shared_data():
    path = shared_data_dir()
    if path is None:
        pytest.skip("needs ../shared/data (real benchmark data and the Chinese BERT vocab), absent on this checkout")
    return path


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long end-to-end run; CI runs these once in a separate step")
    config.addinivalue_line("markers", "needs_shared_data: uses ../shared/data; skipped with a reason when absent")
