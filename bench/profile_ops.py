"""The two CPU costs behind the training step's AddGrad nodes and its allocation overhead, measured in isolation:

    python -m bench.profile_ops [--rows 4096] [--width 1024] [--repeats 20]

Each case runs in a fresh process twice, with glibc's default malloc settings (PADDLE_ELECTRA_NO_ENV=1 plus the
other environment paddle_electra would set) and with paddle_electra's `env.tune_malloc`, and prints the median ms of:
- a same-shape add and a bias (broadcast) add of rows x width floats;
- the bias gradient as Paddle's broadcast-add backward (reduce over rows) and as ones(1, rows) @ dy;
- x @ W forward + backward for x of rows x 256 and W of 256 x width, with and without the bias, through nn.Linear's
  plain op and through modeling.Linear (the matmul bias gradient).
Used for the numbers in paddle_electra/env.py and modeling.Linear's docstrings.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from bench import common
from paddle_electra.errors import command
from paddle_electra.runconfig import ArgumentParser


def child(rows: int, width: int, repeats: int) -> dict:
    import paddle
    import paddle.nn.functional as F

    from paddle_electra.modeling import linear

    def median_ms(fn):
        return round(common.time_repeats(fn, 1, repeats)["median_s"] * 1e3, 3)

    paddle.seed(0)
    a, dy = paddle.randn([rows, width]), paddle.randn([rows, width])
    bias = paddle.zeros([width])
    bias.stop_gradient = False
    ones = paddle.ones([1, rows])

    def broadcast_add_backward():
        y = a + bias
        y.backward(dy)
        bias.clear_gradient()

    x = paddle.randn([rows, 256])
    x.stop_gradient = False
    layer = linear(256, width, 0.02)

    def step(forward):
        def run():
            forward().backward(dy)
            x.clear_gradient()
            layer.clear_gradients()
        return run

    return {"same-shape add": median_ms(lambda: a + a), "bias add": median_ms(lambda: a + bias),
            "bias add, forward + backward": median_ms(broadcast_add_backward),
            "bias gradient as ones @ dy": median_ms(lambda: paddle.matmul(ones, dy)),
            "x @ W, forward + backward": median_ms(step(lambda: paddle.matmul(x, layer.weight))),
            "F.linear (x @ W + b), forward + backward": median_ms(step(lambda: F.linear(x, layer.weight, layer.bias))),
            "modeling.Linear, forward + backward": median_ms(step(lambda: layer(x)))}


@command
def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m bench.profile_ops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.rows, args.width, args.repeats)))
        return 0
    results = {}
    for name, extra in (("glibc default", {"PADDLE_ELECTRA_NO_ENV": "1"}), ("tune_malloc", {})):
        # os.environ already holds what paddle_electra's import set here (threads, MKL, Paddle flags), so the
        # first child differs from the second only in the malloc settings
        env = dict(os.environ, **extra)
        out = subprocess.run([sys.executable, "-m", "bench.profile_ops", "--child", "--rows", str(args.rows),
                              "--width", str(args.width), "--repeats", str(args.repeats)],
                             env=env, capture_output=True, text=True, check=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    print(f"| {args.rows} x {args.width} floats, median ms of {args.repeats} | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for case in results["tune_malloc"]:
        print(f"| {case} | " + " | ".join(f"{r[case]:.2f}" for r in results.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
