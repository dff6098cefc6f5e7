"""Pretrain ELECTRA (generator + discriminator) on a dataset built by pretrain/data.py.

    python pretrain/run.py --data DATA --size small|small-ex|base|large|tiny --output-dir OUT \\
        [--config run.json] [--key value ...]
    python -m paddle.distributed.launch --nproc_per_node 2 pretrain/run.py ...     (data parallel, fleet collective)

Every field of pretrain/config.py:PretrainConfig is a flag (`--max-steps 1000`, `--max-minutes 10`,
`--eval-data HELDOUT --eval-every 500`, `--save-every 1000`, `--gradient-accumulation-steps 4`, `--amp bf16`,
`--discriminator '{"hidden_size": 128}'`, ...); defaults -> --config JSON -> flags; unknown keys are errors.
`--resume` continues the newest valid checkpoint in OUT exactly (same losses as an uninterrupted run).
`--init-from DIR` starts from released weights (DIR/{discriminator,generator}/ from `python -m converters` or an
export; shapes from DIR, fresh optimizer; OUT/init_report.json lists every tensor; see pretrain/warmstart.py).
SIGTERM / SIGINT stop at the next step boundary with a checkpoint and an export.

Writes OUT/losses.jsonl (every step), OUT/eval.jsonl, OUT/visualdl/ (`visualdl --logdir OUT/visualdl`),
OUT/checkpoints/step-N/, OUT/export/{discriminator,generator}/, OUT/summary.json.
"""
import sys

import paddle_electra  # noqa: F401  (sets OMP_NUM_THREADS / MKL before paddle is imported)
from paddle_electra.errors import command


@command
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    from pretrain.config import from_argv
    cfg = from_argv(argv)
    cfg.check_paths()
    from pretrain.train import train
    train(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
