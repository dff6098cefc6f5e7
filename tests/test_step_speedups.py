"""The training-step speed-ups of issue 15 change how numbers are computed, never which numbers.

- Paddle's strided kernels off (paddle_electra/env.py): set in the environment before Paddle is imported, with
  paddle.set_flags when Paddle came first, never over a value the user set.
- The generator head's bias inside the matmul (modeling.GeneratorHead): logits and every gradient equal the plain
  `matmul + bias` within float rounding.
- The logged gradient norm (optim.global_grad_norm): the L2 norm of all gradients, as NumPy computes it.
"""
import os
import subprocess
import sys

import numpy as np
import paddle

from paddle_electra.config import ElectraConfig
from paddle_electra.modeling import GeneratorHead
from paddle_electra.optim import global_grad_norm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flag_in_child(env_extra: dict, import_paddle_first: bool) -> str:
    code = ("import paddle\n" if import_paddle_first else "") + (
        "import paddle_electra.modeling, paddle\n"
        "print(paddle.get_flags(['FLAGS_use_stride_kernel'])['FLAGS_use_stride_kernel'])\n")
    env = {k: v for k, v in os.environ.items() if k not in ("FLAGS_use_stride_kernel", "PADDLE_ELECTRA_NO_ENV")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_strided_kernels_are_off_whichever_is_imported_first_and_a_users_value_wins():
    assert _flag_in_child({}, import_paddle_first=False) == "False"
    assert _flag_in_child({}, import_paddle_first=True) == "False"  # set_flags after the fact
    assert _flag_in_child({"FLAGS_use_stride_kernel": "1"}, import_paddle_first=False) == "True"
    assert _flag_in_child({"FLAGS_use_stride_kernel": "1"}, import_paddle_first=True) == "True"
    assert _flag_in_child({"PADDLE_ELECTRA_NO_ENV": "1"}, import_paddle_first=True) == "True"  # Paddle's default


def test_generator_head_with_the_bias_in_the_matmul_equals_matmul_plus_bias():
    config = ElectraConfig(vocab_size=97, hidden_size=16, embedding_size=12, num_hidden_layers=1,
                           num_attention_heads=1, intermediate_size=32)
    paddle.seed(5)
    head = GeneratorHead(config)
    head.output_bias.set_value(paddle.randn([97]))
    table = paddle.randn([97, 12])
    table.stop_gradient = False
    hidden = paddle.randn([3, 5, 16])
    hidden.stop_gradient = False
    upstream = paddle.randn([3, 5, 97])

    logits = head(hidden, table)
    (logits * upstream).sum().backward()
    fused = [t.grad.numpy().copy() for t in (hidden, table, head.output_bias, head.dense.weight)]
    for t in (hidden, table, head.output_bias, head.dense.weight):
        t.clear_gradient()

    x = head.layer_norm(head.act(head.dense(hidden)))
    reference = paddle.matmul(x, table, transpose_y=True) + head.output_bias
    (reference * upstream).sum().backward()
    plain = [t.grad.numpy() for t in (hidden, table, head.output_bias, head.dense.weight)]

    assert logits.shape == [3, 5, 97]
    np.testing.assert_allclose(logits.numpy(), reference.numpy(), rtol=1e-5, atol=1e-5)
    for got, want in zip(fused, plain):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_global_grad_norm_is_the_l2_norm_of_all_gradients():
    layer = paddle.nn.Linear(7, 3)
    other = paddle.nn.Linear(3, 2)
    unused = paddle.nn.Linear(2, 2)  # no gradient: skipped
    paddle.seed(1)
    other(layer(paddle.randn([4, 7]))).square().sum().backward()
    params = [*layer.parameters(), *other.parameters(), *unused.parameters()]
    expected = np.sqrt(sum(float((p.grad.numpy().astype(np.float64) ** 2).sum()) for p in params
                           if p.grad is not None))
    assert abs(global_grad_norm(params) - expected) <= 1e-5 * expected
    assert global_grad_norm(unused.parameters()) == 0.0


def test_profile_script_reports_the_fine_tuning_step(tmp_path, monkeypatch):
    """bench.profile_step --finetune: the phases of the fine-tuning step and Paddle's operator table, written to --out
    (issue 15's profile of the hub.Trainer-path step)."""
    from bench.profile_step import main
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # main() sets them; restored after the test
        monkeypatch.setenv(name, "1")
    out = tmp_path / "profile.md"
    assert main(["--finetune", "tiny", "--batch", "2", "--seq-len", "8", "--steps", "1", "--ops", "5",
                 "--threads", "1", "--out", str(out)]) == 0
    report = out.read_text(encoding="utf-8")
    assert report.startswith("# One fine-tuning step") and "| backward |" in report and "| optimizer |" in report
    assert "Operator Summary" in report


def test_malloc_tuning_and_the_op_profile(capsys):
    """env.tune_malloc applies on glibc (the import already did; applying again is harmless) and steps aside for a
    user's malloc settings; bench.profile_ops times the single operations behind the step's speed-ups, in two child
    processes (glibc defaults, tuned)."""
    import os
    import subprocess
    import sys

    from paddle_electra import env
    assert env.tune_malloc() is True
    probe = "from paddle_electra import env; print(env.tune_malloc())"
    for extra, expected in (({"MALLOC_TOP_PAD_": "0"}, "False"), ({"PADDLE_ELECTRA_NO_ENV": "1"}, "False")):
        out = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ, **extra), capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[-1]
        assert out == expected, extra
    from bench.profile_ops import main
    assert main(["--rows", "64", "--width", "32", "--repeats", "1"]) == 0
    table = capsys.readouterr().out
    assert "| glibc default | tune_malloc |" in table and "| modeling.Linear, forward + backward |" in table
