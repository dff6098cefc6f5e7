"""Pretraining data builder: raw text -> packed `[CLS] A [SEP] B [SEP]` examples in sharded memory-mapped arrays (the
reader, for training and evaluation, is pretrain/dataset.py).

Input: UTF-8 text files (or directories of them), one sentence per line, a blank line between documents (the
official `build_pretraining_dataset.py` convention, `--blanks-separate-docs`). Output directory:

    index.json              format, shapes, dtypes, packing parameters, stats, bad-input report, shard list
    vocab.txt, tokenizer_config.json   the tokenizer the ids belong to
    tokens-00000.bin ...    uint16 (uint32 if the vocab has > 65,536 tokens) token ids, examples back to back
    examples-00000.bin ...  int64 [n, 3]: (start in the shard's tokens, length, length of "[CLS] A [SEP]")
    token_counts.npy        int64 [vocab_size]: how often each id occurs (the unigram baseline of evaluate.py)
    words-00000.bin ...     with `--word-boundaries jieba` only: uint8 per token, 1 where it starts a word ([CLS] and
                            [SEP] are words of their own; a WordPiece "##" piece never starts one), for whole-word
                            masking (`pretrain/run.py --masking whole-word`)

An example is stored without padding, special tokens included; token_type_ids (0 up to and including the first
[SEP], 1 after) and attention_mask (1 on the stored tokens) are rebuilt from (length, length of A part).

Packing follows google-research/electra `build_pretraining_dataset.py` AFTER its segment fix (commit 1ed0852,
2020-03-16; electra-reference.md section 3), not the pre-fix code that Chinese-ELECTRA still carries (which almost
never produces a B segment):
- each line is one "sentence"; lines are buffered until the buffered token count reaches the target length, then an
  example is cut and the overflow beyond max_seq_length is discarded, not carried over; a blank line (document end)
  and the end of a file also cut an example from what is buffered;
- the target is max_seq_length, except that after each example, with probability 0.05 (`short_seq_prob`), the next
  target is uniform in [5, max_seq_length];
- with probability 0.1 (`single_segment_prob`) everything goes to segment A; otherwise the A target is
  (target - 3) // 2 and a sentence goes to A if A is empty, or if A plus it stays under the A target, or (with
  probability 0.5) if B is still empty and A is under target; otherwise it goes to B;
- A is cut to max_seq_length - 2 tokens, B to max_seq_length - len(A) - 3.
`--segment-logic original` reproduces the pre-fix rule instead (Chinese-ELECTRA's builder; ExamplePacker.flush).

Parallelism and determinism: the main process streams the files (never holding more than a few chunks), cuts the
text into chunks of whole documents (~`chunk_chars` characters; a longer document is cut at a line boundary, which
then acts as a document boundary), and worker processes tokenize (the Rust WordPiece tokenizer) and pack each chunk with a
random generator seeded by (seed, chunk number). Output files are therefore byte-identical for a given seed,
inputs and options, whatever the number of workers. Examples are stored in corpus order; shuffling is the
training sampler's job (a new permutation each epoch).

Bad input (policy `on_bad_input`): "skip" (default) drops the offending line or file, counts it, prints the first
20 problems (file and line) and records counts plus the first 100 locations in index.json; "fail" raises DataError
naming the file and line at the first problem. Problems: bytes that do not decode (`encoding`, default UTF-8; a
UTF-8 BOM is accepted), a line longer than `max_line_bytes` (default 1 MiB, read in pieces so it never has to fit
in memory), an empty (or whitespace-only) file, an unreadable path.
"""
from __future__ import annotations

import codecs
import collections
import concurrent.futures
import hashlib
import itertools
import multiprocessing
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from typing import Iterator, List, Optional

import numpy as np

from paddle_electra.errors import ConfigError, DataError, command
from paddle_electra.fileio import atomic_folder, sha256_file, write_json, write_manifest
from paddle_electra.runconfig import ArgumentParser, add_fields, field_flags, load
from pretrain.dataset import FORMAT, INDEX_NAME, PretrainingDataset

MAX_REPORTED = 100  # bad-input locations kept in index.json
MAX_PRINTED = 20  # ... and printed to stderr
SEGMENT_LOGIC = {
    "fixed": "google-research/electra build_pretraining_dataset.py after the segment fix (1ed0852)",
    "original": "Chinese-ELECTRA build_pretraining_dataset.py (the pre-fix segment rule)",
}


@dataclass
class BuildOptions:
    """How text becomes examples; stored in index.json so a dataset documents its own recipe."""

    max_seq_length: int = 128
    seed: int = 12345
    short_seq_prob: float = 0.05
    single_segment_prob: float = 0.1
    do_lower_case: bool = True
    on_bad_input: str = "skip"  # or "fail"
    max_line_bytes: int = 1 << 20
    encoding: str = "utf-8"
    chunk_chars: int = 1 << 18
    shard_tokens: int = 1 << 26
    # "fixed": google-research/electra after its segment fix (1ed0852); "original": the pre-fix rule that
    # Chinese-ELECTRA's build_pretraining_dataset.py still carries (once A holds a sentence, every later one joins A)
    segment_logic: str = "fixed"
    # None, or "jieba": store which tokens start a word (words-NNNNN.bin), for `pretrain/run.py --masking whole-word`
    word_boundaries: Optional[str] = None

    def validate(self):
        if not 8 <= self.max_seq_length <= 512:  # 512 = max_position_embeddings of every ELECTRA config
            raise ConfigError(f"max_seq_length must be in [8, 512], got {self.max_seq_length}")
        for name in ("short_seq_prob", "single_segment_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.on_bad_input not in ("skip", "fail"):
            raise ConfigError(f"on_bad_input must be 'skip' or 'fail', got {self.on_bad_input!r}")
        for name in ("max_line_bytes", "chunk_chars", "shard_tokens"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(f"encoding: unknown encoding {self.encoding!r}") from None
        if self.segment_logic not in SEGMENT_LOGIC:
            raise ConfigError(f"segment_logic must be one of {sorted(SEGMENT_LOGIC)}, got {self.segment_logic!r}")
        if self.word_boundaries not in (None, "jieba"):
            raise ConfigError(f"word_boundaries must be None or 'jieba', got {self.word_boundaries!r}")
        if self.word_boundaries == "jieba":
            try:
                import jieba  # noqa: F401
            except ImportError:
                raise ConfigError("word_boundaries 'jieba' needs the jieba package: pip install jieba==0.42.1") \
                    from None


# ---------------------------------------------------------------------------------------------------------------------
# Reading: files -> chunks of documents, with the bad-input policy (main process)
# ---------------------------------------------------------------------------------------------------------------------

class BadInputLog:
    """Counts and locations of skipped input; raises DataError instead when the policy is "fail"."""

    def __init__(self, policy: str, printer=None):
        self.policy, self.counts, self.locations = policy, collections.Counter(), []
        self._print = printer or (lambda message: print(message, file=sys.stderr))

    def report(self, kind: str, message: str, path, line: Optional[int] = None):
        if self.policy == "fail":
            raise DataError(f"{message} (on_bad_input='fail'; use 'skip' to drop such input and count it)",
                            path=path, line=line)
        self.counts[kind] += 1
        if len(self.locations) < MAX_REPORTED:
            self.locations.append({"problem": kind, "path": str(path), "line": line, "detail": message})
        if sum(self.counts.values()) <= MAX_PRINTED:
            where = f"{path}:{line}" if line is not None else str(path)
            self._print(f"warning: skipped {kind.replace('_', ' ')} at {where}: {message}")

    def summary(self) -> dict:
        return {"policy": self.policy, "counts": dict(sorted(self.counts.items())), "first": self.locations}


def list_input_files(inputs: List[str]) -> List[str]:
    """Files named directly, plus every file under named directories (hidden ones skipped), sorted per directory."""
    files = []
    for item in inputs:
        if os.path.isdir(item):
            found = []
            for root, dirs, names in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(os.path.join(root, n) for n in names if not n.startswith("."))
            files.extend(sorted(found))
        elif os.path.exists(item):
            files.append(item)
        else:
            raise DataError("input file or directory does not exist", path=item)
    if not files:
        raise DataError(f"no input files found in {inputs}")
    return files


def read_lines(path: str, options: BuildOptions, log: BadInputLog) -> Iterator[tuple]:
    """(decoded stripped line or "" for a blank line, bytes consumed) for one file; bad lines are reported and
    skipped (their bytes are still counted, for the progress bar)."""
    try:
        f = open(path, "rb")
    except OSError as e:
        log.report("unreadable_file", f"cannot open: {e.strerror}", path)
        return
    with f:
        number, any_text, skipped = 0, False, 0
        while True:
            raw = f.readline(options.max_line_bytes + 1)
            if not raw:
                break
            number += 1
            size = len(raw)
            if size > options.max_line_bytes and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # drain the rest of the line without holding it
                    raw = f.readline(1 << 20)
                    size += len(raw)
                log.report("overlong_line", f"line longer than max_line_bytes={options.max_line_bytes}", path, number)
                skipped += size
                continue
            try:
                line = raw.decode(options.encoding)
            except UnicodeDecodeError as e:
                log.report("undecodable_line", f"invalid {options.encoding} at byte {e.start} of the line: "
                           f"{raw[max(0, e.start - 8):e.start + 8]!r}", path, number)
                skipped += size
                continue
            if number == 1:
                line = line.lstrip("\ufeff")
            line = line.strip()
            any_text = any_text or bool(line)
            yield line, size + skipped
            skipped = 0
        if not any_text:
            log.report("empty_file", "file holds no text" if number else "file is empty", path)
        if skipped:
            yield "", skipped


def read_chunks(files: List[str], options: BuildOptions, log: BadInputLog) -> Iterator[tuple]:
    """Yield (bytes read, documents): whole documents of ~chunk_chars characters; a document is a list of lines."""
    documents, document, size, consumed = [], [], 0, 0
    for path in files:
        for line, nbytes in read_lines(path, options, log):
            consumed += nbytes
            if line:
                document.append(line)
                size += len(line)
                if size < options.chunk_chars:
                    continue
            # a blank line, or a chunk's worth of text in one document: the document ends here
            if document:
                documents.append(document)
                document = []
            if size >= options.chunk_chars:
                yield consumed, documents
                documents, size, consumed = [], 0, 0
        if document:  # the end of a file ends a document
            documents.append(document)
            document = []
    if documents or consumed:
        yield consumed, documents


# ---------------------------------------------------------------------------------------------------------------------
# Packing (worker processes)
# ---------------------------------------------------------------------------------------------------------------------

class ExamplePacker:
    """The official example builder: sentences in, (ids, length of "[CLS] A [SEP]") out.

    A sentence is any list (token ids, or (id, word start) pairs: the packer only counts and concatenates);
    cls_id / sep_id are items of the same kind. `segment_logic` "fixed" (default) is google-research/electra after
    its segment fix; "original" is the pre-fix rule of Chinese-ELECTRA (see `flush`)."""

    def __init__(self, max_seq_length, cls_id, sep_id, rng: random.Random, short_seq_prob=0.05,
                 single_segment_prob=0.1, segment_logic="fixed"):
        self.max_length, self.cls_id, self.sep_id, self.rng = max_seq_length, cls_id, sep_id, rng
        self.short_seq_prob, self.single_segment_prob = short_seq_prob, single_segment_prob
        self.original = segment_logic == "original"
        self.target_length = max_seq_length
        self.sentences, self.length = [], 0

    def add_sentence(self, ids):
        """Buffer one sentence; return an example once the buffer reaches the target length, else None."""
        self.sentences.append(ids)
        self.length += len(ids)
        return self.flush() if self.length >= self.target_length else None

    def end_document(self):
        """A document boundary: cut an example from whatever is buffered (None if nothing is)."""
        return self.flush() if self.length else None

    def flush(self):
        rng = self.rng
        a_target = 100000 if rng.random() < self.single_segment_prob else (self.target_length - 3) // 2
        first, second = [], []
        for sentence in self.sentences:
            if self.original:
                # the pre-fix test reads "A is non-empty" where the fix reads "A is empty", and "B is non-empty"
                # where it reads "B is empty": every sentence after the first one in A joins A, and B only ever
                # holds leading sentences that alone reach the A target (then placed after A: out of order)
                to_first = (bool(first) or len(first) + len(sentence) < a_target
                            or (bool(second) and len(first) < a_target and rng.random() < 0.5))
            else:
                to_first = (not first or len(first) + len(sentence) < a_target
                            or (not second and len(first) < a_target and rng.random() < 0.5))
            if to_first:
                first.extend(sentence)
            else:
                second.extend(sentence)
        first = first[:self.max_length - 2]
        second = second[:max(0, self.max_length - len(first) - 3)]
        self.sentences, self.length = [], 0
        self.target_length = rng.randint(5, self.max_length) if rng.random() < self.short_seq_prob \
            else self.max_length
        ids = [self.cls_id] + first + [self.sep_id]
        a_length = len(ids)
        if second:
            ids += second + [self.sep_id]
        return ids, a_length


_TOKENIZER = None


def _init_worker(vocab_path, do_lower_case, worker_process=True):
    global _TOKENIZER
    if worker_process:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core already
    from paddle_electra.tokenizer import ElectraTokenizer
    _TOKENIZER = ElectraTokenizer(vocab_path, do_lower_case=do_lower_case)


def chunk_seed(seed: int, chunk_index: int) -> int:
    """A 64-bit seed for one chunk; independent of worker count and process."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{chunk_index}".encode()).digest()[:8], "little")


_JIEBA = None


def _jieba():
    """jieba, loaded once per process, its dictionary-loading messages off (they go to stderr on every worker)."""
    global _JIEBA
    if _JIEBA is None:
        import logging
        import jieba
        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _JIEBA = jieba
    return _JIEBA


def word_starts(line: str, offsets, tokens) -> List[int]:
    """1 for each token that starts a jieba word of `line`, 0 for a token inside the word before it.

    `offsets` are the tokens' (start, end) character offsets into `line`, `tokens` their strings. A token belongs to
    the word holding its first character; a WordPiece continuation ("##...") always belongs to the token before it, so
    that whole-word masking never splits a WordPiece word even where jieba would."""
    word_of_char = np.zeros(len(line) + 1, dtype=np.int64)
    position = 0
    for number, word in enumerate(_jieba().cut(line, HMM=True)):
        word_of_char[position:position + len(word)] = number
        position += len(word)
    starts, previous = [], -1
    for (start, _), token in zip(offsets, tokens):
        word = int(word_of_char[min(start, len(line))])
        starts.append(0 if token.startswith("##") or word == previous else 1)
        previous = word
    if starts:
        starts[0] = 1
    return starts


def pack_chunk(chunk_index: int, documents: List[List[str]], options: BuildOptions, dtype: str):
    """Tokenize and pack one chunk: (tokens [T] dtype, examples int64 [n, 3] with chunk-local starts, word starts
    [T] uint8 or None without `word_boundaries`)."""
    tok = _TOKENIZER
    lines = [line for document in documents for line in document]
    with_words = options.word_boundaries is not None
    encoded = tok.encode_batch(lines, truncation=False, return_offsets=with_words) if lines else {"input_ids": []}
    sentences = [ids[1:-1] for ids in encoded["input_ids"]]  # drop the [CLS]/[SEP] encode adds
    cls, sep = tok.cls_token_id, tok.sep_token_id
    if with_words:  # the packer carries (id, word start) pairs; [CLS] and [SEP] are words of their own
        sentences = [list(zip(ids, word_starts(line, offsets[1:-1], tok.convert_ids_to_tokens(ids))))
                     for line, ids, offsets in zip(lines, sentences, encoded["offsets"])]
        cls, sep = (cls, 1), (sep, 1)
    packer = ExamplePacker(options.max_seq_length, cls, sep, random.Random(chunk_seed(options.seed, chunk_index)),
                           options.short_seq_prob, options.single_segment_prob, options.segment_logic)
    examples, k = [], 0
    for document in documents:
        for _ in document:
            example = packer.add_sentence(sentences[k])
            k += 1
            if example:
                examples.append(example)
        example = packer.end_document()
        if example:
            examples.append(example)
    lengths = np.array([len(ids) for ids, _ in examples], dtype=np.int64)
    meta = np.zeros((len(examples), 3), dtype=np.int64)
    if len(examples):
        meta[:, 0] = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        meta[:, 1] = lengths
        meta[:, 2] = [a for _, a in examples]
    items = itertools.chain.from_iterable(ids for ids, _ in examples)
    count = int(lengths.sum())
    if not with_words:
        return np.fromiter(items, dtype=dtype, count=count), meta, None
    pairs = np.fromiter(itertools.chain.from_iterable(items), dtype=np.int64, count=2 * count).reshape(-1, 2)
    return pairs[:, 0].astype(dtype), meta, pairs[:, 1].astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------------
# Writing (main process)
# ---------------------------------------------------------------------------------------------------------------------

class ShardWriter:
    """Appends chunk results to tokens-NNNNN.bin / examples-NNNNN.bin (and words-NNNNN.bin with word boundaries),
    starting a new shard past shard_tokens."""

    def __init__(self, directory, dtype, shard_tokens, vocab_size, with_words=False):
        self.directory, self.dtype, self.shard_tokens, self.with_words = directory, dtype, shard_tokens, with_words
        self.shards, self.counts = [], np.zeros(vocab_size, dtype=np.int64)
        self.lengths, self.two_segment, self.words = collections.Counter(), 0, 0
        self._files = {}

    def _open(self):
        n = len(self.shards)
        entry = {"tokens": f"tokens-{n:05d}.bin", "examples": f"examples-{n:05d}.bin", "num_examples": 0,
                 "num_tokens": 0}
        if self.with_words:
            entry["words"] = f"words-{n:05d}.bin"
        self.shards.append(entry)
        self._files = {kind: open(os.path.join(self.directory, entry[kind]), "wb")
                       for kind in ("tokens", "examples", "words") if kind in entry}

    def add(self, tokens, meta, words=None):
        if len(meta) == 0:
            return
        if not self._files:
            self._open()
        entry = self.shards[-1]
        meta = meta.copy()
        meta[:, 0] += entry["num_tokens"]
        self._files["tokens"].write(tokens.tobytes())
        self._files["examples"].write(meta.tobytes())
        if self.with_words:
            self._files["words"].write(words.tobytes())
            self.words += int(words.sum())
        entry["num_tokens"] += int(tokens.size)
        entry["num_examples"] += int(len(meta))
        self.counts += np.bincount(tokens, minlength=self.counts.size)[:self.counts.size]
        self.lengths.update(meta[:, 1].tolist())
        self.two_segment += int((meta[:, 2] < meta[:, 1]).sum())
        if entry["num_tokens"] >= self.shard_tokens:
            self.close()

    def close(self):
        for f in self._files.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
        self._files = {}


def build_dataset(inputs: List[str], output_dir: str, vocab: Optional[str] = None, vocab_size: Optional[int] = None,
                  options: Optional[BuildOptions] = None, num_workers: Optional[int] = None, progress: bool = True,
                  overwrite: bool = False, min_frequency: int = 2) -> dict:
    """Build a dataset directory (staged by fileio.atomic_folder, renamed into place at the end); return its index.

    Pass `vocab` (a vocab.txt) or `vocab_size` (build a WordPiece vocab from the same inputs first)."""
    from tqdm import tqdm
    from paddle_electra.tokenizer import ElectraTokenizer, build_vocab

    options = options or BuildOptions()
    options.validate()
    if (vocab is None) == (vocab_size is None):
        raise ConfigError("pass exactly one of vocab (a vocab.txt) and vocab_size (build one from the inputs)")
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and not overwrite:
        raise ConfigError(f"{output_dir} exists; pass overwrite=True (--overwrite) to replace it")
    files = list_input_files(inputs)
    if num_workers is None:
        num_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with atomic_folder(output_dir) as tmp:  # the dataset appears whole, or not at all
        if vocab is None:  # pass 1: the cleaned text (same bad-input policy) -> WordPiece vocab
            clean = os.path.join(tmp, "vocab-corpus.txt")
            with open(clean, "w", encoding="utf-8") as f:
                for _, documents in read_chunks(files, options, BadInputLog(options.on_bad_input, lambda m: None)):
                    for document in documents:
                        f.write("\n".join(document) + "\n\n")
            vocab = build_vocab(clean, vocab_size, os.path.join(tmp, "vocab-built.txt"), min_frequency=min_frequency)
            os.unlink(clean)
        tokenizer = ElectraTokenizer(vocab, do_lower_case=options.do_lower_case)
        tokenizer.save_pretrained(tmp)
        if os.path.exists(os.path.join(tmp, "vocab-built.txt")):
            os.unlink(os.path.join(tmp, "vocab-built.txt"))
        dtype = "uint16" if tokenizer.vocab_size <= 1 << 16 else "uint32"
        log = BadInputLog(options.on_bad_input)
        writer = ShardWriter(tmp, dtype, options.shard_tokens, tokenizer.vocab_size,
                             with_words=options.word_boundaries is not None)
        total_bytes = sum(os.path.getsize(p) for p in files if os.path.isfile(p))
        started = time.time()
        bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="building", disable=not progress,
                   dynamic_ncols=True)
        chunks = read_chunks(files, options, log)
        vocab_path = os.path.join(tmp, "vocab.txt")
        try:
            if num_workers <= 0:
                _init_worker(vocab_path, options.do_lower_case, worker_process=False)
                for index, (nbytes, documents) in enumerate(chunks):
                    writer.add(*pack_chunk(index, documents, options, dtype))
                    _progress(bar, nbytes, writer, started)
            else:
                with concurrent.futures.ProcessPoolExecutor(
                        num_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                        initargs=(vocab_path, options.do_lower_case)) as pool:
                    pending = collections.deque()
                    for index, (nbytes, documents) in enumerate(chunks):
                        pending.append((nbytes, pool.submit(pack_chunk, index, documents, options, dtype)))
                        while len(pending) > 2 * num_workers:  # bounded: the corpus is never all in memory
                            nbytes_done, future = pending.popleft()
                            writer.add(*future.result())
                            _progress(bar, nbytes_done, writer, started)
                    while pending:
                        nbytes_done, future = pending.popleft()
                        writer.add(*future.result())
                        _progress(bar, nbytes_done, writer, started)
        finally:
            writer.close()
            bar.close()
        elapsed = time.time() - started
        num_examples = sum(s["num_examples"] for s in writer.shards)
        num_tokens = sum(s["num_tokens"] for s in writer.shards)
        if num_examples == 0:
            raise DataError(f"no examples: the inputs {inputs} hold no usable text")
        np.save(os.path.join(tmp, "token_counts.npy"), writer.counts)
        index = {
            "format": FORMAT,
            "max_seq_length": options.max_seq_length,
            "dtype": dtype,
            "vocab_size": tokenizer.vocab_size,
            "vocab_sha256": sha256_file(vocab_path),
            "special_ids": {"pad": tokenizer.pad_token_id, "unk": tokenizer.unk_token_id,
                            "cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id,
                            "mask": tokenizer.mask_token_id},
            "options": asdict(options),
            "packing": SEGMENT_LOGIC[options.segment_logic],
            "word_boundaries": options.word_boundaries,
            "inputs": [{"path": p, "bytes": os.path.getsize(p) if os.path.isfile(p) else None} for p in files],
            "num_examples": num_examples,
            "num_tokens": num_tokens,
            "stats": {
                "mean_length": num_tokens / num_examples,
                "full_length_fraction": writer.lengths[options.max_seq_length] / num_examples,
                "two_segment_fraction": writer.two_segment / num_examples,
                "tokens_per_word": num_tokens / writer.words if writer.words else None,
            },
            "bad_input": log.summary(),
            "shards": writer.shards,
        }
        write_json(os.path.join(tmp, INDEX_NAME), index)
        write_manifest(tmp, format=FORMAT)  # every file's size and sha256, as for every folder the project writes
    index["build_seconds"], index["num_workers"] = elapsed, num_workers
    return index


# the build options that must agree for datasets to be read as one (the seed and the inputs may differ)
MERGE_MUST_AGREE = ("format", "max_seq_length", "dtype", "vocab_size", "vocab_sha256", "special_ids", "packing",
                    "word_boundaries")
MERGE_OPTIONS = ("short_seq_prob", "single_segment_prob", "do_lower_case", "segment_logic")


def merge_datasets(parts: List[str], output_dir: str, overwrite: bool = False) -> dict:
    """Write OUTPUT/index.json that reads the built datasets `parts` as one, in the given order, without copying a
    shard: how a corpus too big for one machine is built (each machine builds its part of the text files with the
    same vocab, into one shared folder), then trained on with `--data OUTPUT`. The shards are referenced by paths
    relative to OUTPUT (OUTPUT and the parts are siblings: move them together). Every part's manifest is verified
    first; the parts must agree on MERGE_MUST_AGREE and MERGE_OPTIONS."""
    import shutil
    from paddle_electra.fileio import verify_manifest
    if len(parts) < 2:
        raise ConfigError(f"--merge needs at least 2 datasets, got {len(parts)}")
    output_dir = os.path.abspath(output_dir)
    for part in parts:
        inside = os.path.commonpath([output_dir, os.path.abspath(part)]) == output_dir
        if inside:  # replacing OUTPUT would delete it
            raise ConfigError(f"--merge: {part} is inside --output {output_dir}; build the parts beside it")
    indexes = []
    for part in parts:
        dataset = PretrainingDataset(part)  # checks format and shard sizes
        verify_manifest(part, error=DataError)
        indexes.append(dataset.index)
    first = indexes[0]
    for part, index in zip(parts[1:], indexes[1:]):
        for key in MERGE_MUST_AGREE:
            if index.get(key) != first.get(key):
                raise DataError(f"differs from {parts[0]} ({index.get(key)!r} vs {first.get(key)!r}): every part "
                                f"must be built with the same vocab and packing options", path=part, field=key)
        for key in MERGE_OPTIONS:
            if index["options"].get(key) != first["options"].get(key):
                raise DataError(f"differs from {parts[0]} ({index['options'].get(key)!r} vs "
                                f"{first['options'].get(key)!r})", path=part, field=f"options.{key}")
    seeds = [index["options"]["seed"] for index in indexes]
    if len(set(seeds)) < len(seeds):
        print(f"note: parts share a packing seed ({seeds}); pass --seed BASE+i when building part i so that "
              f"their short-example and segment draws differ", file=sys.stderr)
    shards, counts = [], None
    for part, index in zip(parts, indexes):
        rel = os.path.relpath(os.path.abspath(part), output_dir)
        for shard in index["shards"]:
            shards.append({**shard, **{key: os.path.join(rel, shard[key]) for key in ("tokens", "examples", "words")
                                       if key in shard}})
        part_counts = np.load(os.path.join(part, "token_counts.npy"), allow_pickle=False)
        counts = part_counts if counts is None else counts + part_counts
    num_examples = sum(index["num_examples"] for index in indexes)
    num_tokens = sum(index["num_tokens"] for index in indexes)

    def weighted(stat, by):
        values = [(index["stats"].get(stat), index[by]) for index in indexes]
        if any(v is None for v, _ in values):
            return None
        return sum(v * w for v, w in values) / sum(w for _, w in values)

    bad = collections.Counter()
    for index in indexes:
        bad.update(index["bad_input"]["counts"])
    merged = {
        **{key: first[key] for key in MERGE_MUST_AGREE},
        "options": {**first["options"], "seed": seeds},
        "inputs": [entry for index in indexes for entry in index["inputs"]],
        "parts": [{"path": os.path.relpath(os.path.abspath(part), output_dir), "num_examples": index["num_examples"],
                   "manifest_sha256": sha256_file(os.path.join(part, "manifest.json"))}
                  for part, index in zip(parts, indexes)],
        "num_examples": num_examples,
        "num_tokens": num_tokens,
        "stats": {"mean_length": num_tokens / num_examples,
                  "full_length_fraction": weighted("full_length_fraction", "num_examples"),
                  "two_segment_fraction": weighted("two_segment_fraction", "num_examples"),
                  "tokens_per_word": weighted("tokens_per_word", "num_tokens")},
        "bad_input": {"policy": first["bad_input"]["policy"], "counts": dict(bad),
                      "first": [loc for index in indexes for loc in index["bad_input"]["first"]][:100]},
        "shards": shards,
    }
    if os.path.exists(output_dir) and os.listdir(output_dir) and not overwrite:
        raise ConfigError(f"--output: {output_dir} exists and is not empty; pass --overwrite to replace it")
    with atomic_folder(output_dir) as tmp:
        np.save(os.path.join(tmp, "token_counts.npy"), counts)
        for name in ("vocab.txt", "tokenizer_config.json"):
            if os.path.isfile(os.path.join(parts[0], name)):
                shutil.copyfile(os.path.join(parts[0], name), os.path.join(tmp, name))
        write_json(os.path.join(tmp, INDEX_NAME), merged)
        write_manifest(tmp, format=FORMAT)
    return merged


def _progress(bar, nbytes, writer, started):
    bar.update(nbytes)
    tokens = sum(s["num_tokens"] for s in writer.shards)
    bar.set_postfix(tokens=tokens, tok_per_s=f"{tokens / max(time.time() - started, 1e-9):.0f}", refresh=False)


# ---------------------------------------------------------------------------------------------------------------------

def check_build_args(args):
    """The first problem with the command line's paths and counts, as one line, or None: checked before any work
    starts (the BuildOptions fields are checked by BuildOptions.validate)."""
    for path in args.input:
        if not os.path.exists(path):
            return f"--input: {path} not found"
    if args.vocab is not None and not os.path.isfile(args.vocab):
        return f"--vocab: {args.vocab} not found"
    if args.build_vocab is not None and args.build_vocab <= 5:
        return f"--build-vocab must be larger than the 5 special tokens, got {args.build_vocab}"
    if args.num_workers is not None and args.num_workers < 0:
        return f"--num-workers must be >= 0, got {args.num_workers}"
    if args.min_frequency < 1:
        return f"--min-frequency must be >= 1, got {args.min_frequency}"
    if os.path.exists(args.output) and os.listdir(args.output) and not args.overwrite:
        return f"--output: {args.output} exists and is not empty; pass --overwrite to replace it"
    return None


# --help text of the BuildOptions fields (their type and default are added by runconfig.add_fields)
BUILD_HELP = {
    "max_seq_length": "tokens per example: 128 or 512 (the Chinese models used 512)",
    "seed": "packing seed (the same seed gives the same bytes for any --num-workers)",
    "short_seq_prob": "share of examples given a shorter target length",
    "single_segment_prob": "share of examples packed as one segment",
    "do_lower_case": "lower-case the text (--no-lower-case: false)",
    "on_bad_input": "skip (count and report) or fail at the first undecodable byte, over-long line or empty file",
    "max_line_bytes": "longer lines are bad input",
    "encoding": "of the input files",
    "chunk_chars": "text per tokenizer task",
    "shard_tokens": "tokens per shard file",
    "segment_logic": "fixed: google-research/electra after its segment fix (default); original: the pre-fix rule of "
                     "Chinese-ELECTRA's builder (almost every example one segment)",
    "word_boundaries": "jieba: store word boundaries for pretrain/run.py --masking whole-word",
}


@command
def main(argv=None):
    parser = ArgumentParser(prog="python -m pretrain.data", description="Build a packed ELECTRA pretraining dataset "
                            "from text files.", epilog=__doc__.split("\n\n")[1])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", help="text files and/or directories")
    source.add_argument("--merge", nargs="+", metavar="DATASET",
                        help="instead of building: read these built datasets (same vocab and options) as one "
                             "dataset at --output, shards left in place (parallel builds on several machines)")
    parser.add_argument("--output", required=True, help="dataset directory to create")
    vocab = parser.add_mutually_exclusive_group()
    vocab.add_argument("--vocab", help="vocab.txt to tokenize with")
    vocab.add_argument("--build-vocab", type=int, metavar="SIZE", help="build a WordPiece vocab of SIZE from the inputs")
    parser.add_argument("--min-frequency", type=int, default=2, help="with --build-vocab")
    parser.add_argument("--num-workers", type=int, default=None, help="tokenizer processes (default: CPU count; 0: "
                                                                      "in this process)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    # the recipe: defaults -> --config JSON -> flags, through the one typed layer (paddle_electra.runconfig)
    parser.add_argument("--config", metavar="JSON", help="a JSON object of recipe fields (as in a dataset's "
                                                         "index.json \"options\"); flags override it")
    parser.add_argument("--no-lower-case", action="store_true", help="the same as --do-lower-case false")
    add_fields(parser, BuildOptions, helps=BUILD_HELP, title="recipe (BuildOptions, stored in index.json)")
    args = parser.parse_args(argv)
    if args.merge:
        merged = merge_datasets(args.merge, args.output, overwrite=args.overwrite)
        print(f"{merged['num_examples']} examples, {merged['num_tokens']} tokens in {len(merged['shards'])} shards of "
              f"{len(args.merge)} datasets -> {args.output}")
        return 0
    if not (args.vocab or args.build_vocab):
        raise ConfigError("one of --vocab or --build-vocab is required to build a dataset")
    flags = field_flags(args)
    if args.no_lower_case:
        flags["do_lower_case"] = False
    options = load(BuildOptions, args.config, flags, what="build options")
    options.validate()  # the fields' rules live in one place
    problem = check_build_args(args)
    if problem:
        raise ConfigError(problem)
    index = build_dataset(args.input, args.output, vocab=args.vocab, vocab_size=args.build_vocab,
                          options=options, num_workers=args.num_workers, progress=not args.quiet,
                          overwrite=args.overwrite, min_frequency=args.min_frequency)
    seconds = index["build_seconds"]
    print(f"{index['num_examples']} examples, {index['num_tokens']} tokens in {seconds:.1f}s "
          f"({index['num_tokens'] / max(seconds, 1e-9):.0f} tokens/s, {index['num_workers']} workers) -> {args.output}")
    if index["bad_input"]["counts"]:
        print(f"skipped input: {index['bad_input']['counts']} (first locations in {INDEX_NAME})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
