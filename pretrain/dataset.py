"""Reading a built pretraining dataset (pretrain/data.py writes it; its docstring describes the format): random access
to the examples through memory maps, and the seekable epoch sampler that makes resumption exact."""
from __future__ import annotations

import json
import os

import numpy as np

from paddle_electra.errors import DataError

FORMAT = "paddle-electra-pretraining-data/1"
INDEX_NAME = "index.json"


class PretrainingDataset:
    """Random access to a built dataset's examples through memory maps; batches are padded to max_seq_length."""

    def __init__(self, directory: str):
        self.directory = os.fspath(directory)
        path = os.path.join(self.directory, INDEX_NAME)
        try:
            with open(path, encoding="utf-8") as f:
                self.index = json.load(f)
        except FileNotFoundError:
            raise DataError("not a pretraining dataset (no index.json); build one with pretrain/data.py",
                            path=self.directory) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"index is not valid JSON: {e}", path=path) from None
        if not isinstance(self.index, dict) or self.index.get("format") != FORMAT:
            raise DataError(f"unknown dataset format {self.index.get('format') if isinstance(self.index, dict) else None!r}"
                            f", expected {FORMAT!r}", path=path, field="format")
        self.max_seq_length = int(self.index["max_seq_length"])
        self.vocab_size = int(self.index["vocab_size"])
        self.special_ids = dict(self.index["special_ids"])
        self.num_examples = int(self.index["num_examples"])
        self.word_boundaries = self.index.get("word_boundaries")
        self._tokens, self._examples, self._words = [], [], []
        for shard in self.index["shards"]:
            tokens_path = os.path.join(self.directory, shard["tokens"])
            examples_path = os.path.join(self.directory, shard["examples"])
            for p, size in ((tokens_path, shard["num_tokens"] * np.dtype(self.index["dtype"]).itemsize),
                            (examples_path, shard["num_examples"] * 24)):
                if not os.path.isfile(p) or os.path.getsize(p) != size:
                    raise DataError(f"shard file missing or of the wrong size (expected {size} bytes)", path=p)
            self._tokens.append(np.memmap(tokens_path, dtype=self.index["dtype"], mode="r",
                                          shape=(shard["num_tokens"],)))
            self._examples.append(np.memmap(examples_path, dtype=np.int64, mode="r",
                                            shape=(shard["num_examples"], 3)))
            if self.word_boundaries:
                words_path = os.path.join(self.directory, shard["words"])
                if not os.path.isfile(words_path) or os.path.getsize(words_path) != shard["num_tokens"]:
                    raise DataError(f"shard file missing or of the wrong size (expected {shard['num_tokens']} bytes)",
                                    path=words_path)
                self._words.append(np.memmap(words_path, dtype=np.uint8, mode="r", shape=(shard["num_tokens"],)))
        self._offsets = np.cumsum([0] + [s["num_examples"] for s in self.index["shards"]])

    def __len__(self):
        return self.num_examples

    def tokenizer(self):
        """The tokenizer the ids belong to (vocab.txt stored with the data)."""
        from paddle_electra.tokenizer import ElectraTokenizer
        return ElectraTokenizer.from_pretrained(self.directory)

    def token_counts(self) -> np.ndarray:
        return np.load(os.path.join(self.directory, "token_counts.npy"), allow_pickle=False)

    def _locate(self, i: int):
        if not 0 <= i < self.num_examples:
            raise IndexError(f"example {i} out of range [0, {self.num_examples})")
        shard = int(np.searchsorted(self._offsets, i, side="right")) - 1
        start, length, a_length = self._examples[shard][i - self._offsets[shard]]
        return shard, int(start), int(length), int(a_length)

    def example(self, i: int):
        """(ids as int64 array with [CLS]/[SEP], length of "[CLS] A [SEP]")."""
        shard, start, length, a_length = self._locate(i)
        return np.asarray(self._tokens[shard][start:start + length], dtype=np.int64), a_length

    def word_starts(self, i: int) -> np.ndarray:
        """Example i's word starts (int64, 1 where a token begins a word); the dataset must have word boundaries."""
        if not self.word_boundaries:
            raise DataError("the dataset has no word boundaries; rebuild it with pretrain/data.py --word-boundaries "
                            "jieba", path=self.directory)
        shard, start, length, _ = self._locate(i)
        return np.asarray(self._words[shard][start:start + length], dtype=np.int64)

    def batch(self, indices, word_starts: bool = False) -> dict:
        """input_ids, token_type_ids, attention_mask (and with `word_starts`, word_starts: 1 where a token begins a
        word, also on padding) as int64 [B, max_seq_length], zero-padded."""
        b, length = len(indices), self.max_seq_length
        names = ("input_ids", "token_type_ids", "attention_mask")
        out = {name: np.zeros((b, length), dtype=np.int64) for name in names}
        if word_starts:
            out["word_starts"] = np.ones((b, length), dtype=np.int64)
        for row, i in enumerate(indices):
            ids, a_length = self.example(int(i))
            out["input_ids"][row, :ids.size] = ids
            out["token_type_ids"][row, a_length:ids.size] = 1
            out["attention_mask"][row, :ids.size] = 1
            if word_starts:
                out["word_starts"][row, :ids.size] = self.word_starts(int(i))
        return out


class EpochSampler:
    """Maps a position in the endless example stream to an example index: epoch e = position // N is a permutation
    seeded by (seed, e). Seeking to any position is O(1) (plus one permutation per epoch), so a resumed run picks up
    exactly where the checkpoint stopped without reading the batches in between."""

    def __init__(self, num_examples: int, seed: int, shuffle: bool = True):
        if num_examples <= 0:
            raise DataError("dataset has no examples")
        self.num_examples, self.seed, self.shuffle = num_examples, seed, shuffle
        self._epoch, self._order = None, None

    def _permutation(self, epoch):
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples) \
                if self.shuffle else np.arange(self.num_examples)
        return self._order

    def indices(self, positions) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        out = np.empty_like(positions)
        epochs = positions // self.num_examples
        for epoch in np.unique(epochs):
            where = epochs == epoch
            out[where] = self._permutation(int(epoch))[positions[where] % self.num_examples]
        return out
