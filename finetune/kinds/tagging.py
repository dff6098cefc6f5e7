"""Character-level sequence tagging (People's Daily POS tagging / word segmentation) with BIO chunk tags.

read: "word/TAG  word/TAG ..." lines (the People's Daily 1998 format) -> TaggedExample of characters and BIO tags.
featurize: one token per character (each character through the tokenizer's normalisation and vocab, [UNK] if it has
no piece), "[CLS] chars [SEP]", labels -100 on [CLS]/[SEP]/padding so neither the loss nor the scorer sees them;
sentences longer than max_seq_length - 2 are cut at word boundaries into pieces scored as separate sentences.
head: the module's token-cls head. scorer: ChunkF1Scorer (exact chunk = word boundaries and tag).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from paddle_electra.errors import DataError
from paddle_electra.fileio import write_text
from paddle_electra.metrics import ChunkF1Scorer

from paddle_electra.batching import pad_rows

from .base import Features, Task, run_batches

IGNORE = -100  # Paddle's cross_entropy ignore_index and ChunkF1Scorer's ignore_label


@dataclass
class TaggedExample:
    """One sentence: its characters and one BIO tag per character."""

    guid: str
    chars: List[str]
    tags: List[str]

    @property
    def label(self):
        return self.tags


def parse_tagged_line(line: str, path, number, tag_of=lambda tag: tag):
    """(chars, BIO tags) of one "word/TAG word/TAG" line; `tag_of` maps the corpus tag to the chunk type."""
    chars, tags = [], []
    for token in line.split():
        word, slash, tag = token.rpartition("/")
        if not slash or not word or not tag:
            raise DataError(f"token {token!r} is not word/TAG", path=path, line=number)
        chunk = tag_of(tag)
        for i, char in enumerate(word):
            chars.append(char)
            tags.append(("B-" if i == 0 else "I-") + chunk)
    return chars, tags


def bio_labels(types: Sequence[str]) -> List[str]:
    """The label list "O", then B-/I- of each chunk type in sorted order (ids are positions)."""
    labels = ["O"]
    for t in sorted(set(types)):
        labels += [f"B-{t}", f"I-{t}"]
    return labels


def cut_at_chunks(tags: Sequence[str], limit: int) -> List[range]:
    """Ranges of at most `limit` positions, cut only before a B-/O tag unless one chunk alone is longer."""
    pieces, start = [], 0
    while len(tags) - start > limit:
        cut = start + limit
        while cut > start and tags[cut].startswith("I-"):
            cut -= 1
        if cut == start:  # a single chunk longer than the window: cut inside it (counted by the caller)
            cut = start + limit
        pieces.append(range(start, cut))
        start = cut
    pieces.append(range(start, len(tags)))
    return pieces


class TaggingTask(Task):
    """Character tagging; a subclass supplies the examples and the label list (self.labels)."""

    kind = "token-cls"
    metric = "f1"
    labels: Sequence[str] = ()

    def example_key(self, example):
        return "".join(example.chars) + "\t" + str(example.guid)

    def _char_ids(self, tokenizer):
        cache = getattr(self, "_cache", None)
        if cache is None or cache[0] is not tokenizer:
            cache = (tokenizer, {})
            self._cache = cache
        return cache[1]

    def char_id(self, tokenizer, char):
        """Vocab id of one character after the tokenizer's normalisation (lowercasing, full-width forms kept)."""
        ids = self._char_ids(tokenizer)
        if char not in ids:
            pieces = tokenizer.tokenize(char)
            ids[char] = tokenizer.convert_tokens_to_ids(pieces[0]) if pieces else tokenizer.unk_token_id
        return ids[char]

    def featurize(self, examples, tokenizer, config, training):
        index = {label: i for i, label in enumerate(self.labels)}
        rows, meta, split_words = [], [], 0
        limit = config.max_seq_length - 2
        for e, example in enumerate(examples):
            for piece in cut_at_chunks(example.tags, limit):
                if piece.stop < len(example.tags) and example.tags[piece.stop].startswith("I-"):
                    split_words += 1
                ids = [tokenizer.cls_token_id] + [self.char_id(tokenizer, example.chars[i]) for i in piece] + \
                      [tokenizer.sep_token_id]
                labels = [IGNORE] + [index[example.tags[i]] for i in piece] + [IGNORE]
                rows.append((np.asarray(ids, np.int64), np.zeros(len(ids), np.int64), np.int64(len(ids)),
                             np.asarray(labels, np.int64)))
                meta.append((e, piece))
        return Features(rows, meta, stats={"features": len(rows), "chunks_cut_by_window": split_words})

    def collate(self, pad_id):
        def collate(batch):
            return (pad_rows([r[0] for r in batch], pad_id), pad_rows([r[1] for r in batch], 0),
                    np.asarray([r[2] for r in batch], np.int64), pad_rows([r[3] for r in batch], IGNORE))
        return collate

    def hub_kwargs(self):
        return {"task": self.kind, "num_classes": len(self.labels),
                "label_map": {i: label for i, label in enumerate(self.labels)}}

    def evaluate(self, predict, split, features, config):
        scorer = ChunkF1Scorer(self.labels, ignore_label=IGNORE)
        predicted = [None] * len(split.examples)
        for indices, logits in run_batches(predict, features.rows, config.eval_batch_size, desc=f"eval {split.name}"):
            logits = np.asarray(logits)
            for row, i in enumerate(indices):
                n = int(features.rows[i][2])
                tags = logits[row, 1: n - 1].argmax(axis=-1)
                scorer.update([tags], [features.rows[i][3][1: n - 1]])
                e, piece = features.meta[i]
                if predicted[e] is None:
                    predicted[e] = [None] * len(split.examples[e].chars)
                for position, tag in zip(piece, tags):
                    predicted[e][position] = self.labels[int(tag)]
        return scorer.result(), predicted

    def write_predictions(self, predictions, path_stem):
        """One sentence per line: its predicted tags separated by spaces."""
        path = f"{path_stem}.txt"
        write_text(path, "".join(" ".join(tags) + "\n" for tags in predictions))
        return path
