"""Chinese BERT WordPiece tokenizer (Google BERT / HF `BertTokenizer` rules) on the HF `tokenizers` Rust library.

Pipeline: BertNormalizer (drop control chars, whitespace -> " ", spaces around CJK chars, lowercase and strip accents
when `do_lower_case`) -> BertPreTokenizer (split on whitespace and punctuation) -> WordPiece (greedy longest match,
"##" continuations, "[UNK]" for a word with no match) -> "[CLS] A [SEP] (B [SEP])" with token types 0 (A) / 1 (B).

Single texts without offsets or padding (what fine-tuning, pretraining data and predict() ask for) take a pure-Python
path where every character is a CJK ideograph, punctuation, a space or part of a letter/digit run: ~2.7x the Rust
pipeline's speed on People's Daily, with the same ids (tests/test_tokenizer.py; "fast path" below).

Reference: ids equal HF's slow `BertTokenizer(vocab, do_lower_case=True)`, a port of the `FullTokenizer` in Google's
(and ELECTRA's) tokenization.py that the official Chinese ELECTRA models were trained with. Differences:
- A word longer than `max_input_chars_per_word` is one [UNK]: HF uses 100, Google 200; we default to HF's 100 (the
  test reference). It matters only for unbroken runs of 101-200 non-CJK, non-punctuation chars (each CJK char is a
  word of its own), which natural Chinese text lacks.
- Pair truncation "longest_first" cuts one token at a time from the longer segment, from B on a tie (Google and HF
  slow). `tokenizers` (and so HF BertTokenizerFast) gives the odd token of an odd budget to the longer segment
  instead, so pairs that must be cut are assembled here. When "only_first"/"only_second" cannot fit because the
  other segment alone is too long, HF slow logs an error and returns the over-long sequence; we raise DataError.
- Unicode differences between `tokenizers` and Python's `unicodedata` (Python 3.11, Unicode 14), found by
  tokenizing every code point (the tests pin one of each and check that none lies in the blocks Chinese text uses:
  ASCII, Latin, general/CJK punctuation, CJK, full-width forms):
  1. Code points unassigned in Python's table (Cn): Google/HF drop them as control chars, `tokenizers` keeps them.
  2. U+2B820-U+2B91F (start of CJK Extension E): `tokenizers`' CJK range starts at U+2B920, so they are not split
     off as one-char words (they are [UNK] in Google's vocab either way).
  3. ~500 chars whose category differs in the older Unicode tables of `tokenizers`: punctuation (P*), format chars
     (Cf) and nonspacing marks (Mn) added since Unicode 9, U+166D (now So), U+1734 (now Mc).
- PaddleNLP's BertTokenizer/ElectraTokenizer also split off Unicode symbols (category S*: ￥ ～ ＋ emoji) as if they
  were punctuation, so their ids differ from Google's on lines holding such symbols ("￥100～200" is ￥ 100 ～ 200
  there, ￥ ##100 ##～20 ##0 here and in Google's). We follow Google/HF: the official models were trained so.
- Text equal to a special token ("[MASK]") becomes that token, as in HF (slow and fast) and PaddleNLP.

Ids of `build_vocab` vocabularies: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4. Google's Chinese vocab has
[PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103; use the `*_token_id` attributes.
"""
import functools
import os
import re
import unicodedata

import numpy as np
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from tokenizers.trainers import WordPieceTrainer

from .errors import ConfigError, DataError, WeightsError
from .fileio import (MANIFEST_NAME, read_json_file, update_manifest, utf8_lines, verify_manifest, write_json,
                     write_text)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_NAME, CONFIG_NAME = "vocab.txt", "tokenizer_config.json"
_TRUNCATION = {True: "longest_first", "longest_first": "longest_first", "only_first": "only_first",
               "only_second": "only_second", False: None, None: None, "do_not_truncate": None}
_PADDING = {True: "longest", "longest": "longest", "max_length": "max_length", False: None, None: None,
            "do_not_pad": None}
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def read_vocab(path):
    """Token -> id from a vocab.txt (one token per line, id = line index); DataError names the bad line."""
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except OSError as e:
        raise DataError(f"cannot read vocab file: {e.strerror}", path=path) from None
    if lines[-1] == b"":
        lines.pop()
    if not lines:
        raise DataError("vocab file is empty", path=path, line=1)
    vocab = {}
    for number, raw in enumerate(lines, 1):
        try:  # CRLF files are accepted; a BOM would otherwise become part of "[PAD]"
            token = raw.removesuffix(b"\r").decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"invalid UTF-8 at byte {e.start} of the line", path=path, line=number) from None
        if not token:
            raise DataError("empty token", path=path, line=number)
        if token in vocab:
            raise DataError(f"duplicate token {token!r} (first on line {vocab[token] + 1})", path=path, line=number)
        vocab[token] = number - 1
    for token in SPECIAL_TOKENS:
        if token not in vocab:
            raise DataError(f"vocab lacks the special token {token}", path=path)
    return vocab


def _pipeline(model, do_lower_case):
    tok = Tokenizer(model)
    # strip_accents=None follows lowercase, as in BERT's BasicTokenizer
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=do_lower_case)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


# ---- the pure-Python fast path for single texts -------------------------------------------------------------------
# Most Chinese text is CJK ideographs and punctuation, each of which is a word of its own under BERT's rules, so its
# ids are one dict lookup per character (a C-speed map), ~10x cheaper than the Rust pipeline's normalisation with
# alignment tracking. Runs of ASCII / full-width letters and digits are WordPiece-split here (greedy longest match,
# the same algorithm), cached per word. Any other character (symbols, other scripts, control or non-ASCII-space
# whitespace, "[" which may start a special token) sends the text to the Rust pipeline. tests/test_tokenizer.py
# checks the table char by char against the Rust pipeline and whole texts against both paths.
_CJK_BLOCKS = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF))
_PUNCT_BLOCKS = ((0x21, 0x7E), (0xA1, 0xBF), (0x2010, 0x205E), (0x3001, 0x303F), (0xFE30, 0xFE4F), (0xFF01, 0xFF65))
_WORD_RUN = re.compile("[0-9A-Za-z\uFF10-\uFF19\uFF21-\uFF3A\uFF41-\uFF5A]+")


@functools.lru_cache(maxsize=1)
def standalone_chars() -> str:
    """Characters that are always a word of their own under BERT's rules in both Python's and the `tokenizers`
    Unicode tables: CJK ideographs of the basic and extension-A blocks, and punctuation (ASCII's, or category P* in
    long-stable blocks) that lowercasing and NFD leave unchanged. "[" is left out (it may open "[MASK]")."""
    chars = [chr(c) for lo, hi in _CJK_BLOCKS for c in range(lo, hi + 1)]
    for lo, hi in _PUNCT_BLOCKS:
        for code in range(lo, hi + 1):
            c = chr(code)
            ascii_punct = 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
            if (ascii_punct or (code > 0x7E and unicodedata.category(c).startswith("P"))) and c != "[" and \
                    c.lower() == c and unicodedata.normalize("NFD", c) == c:
                chars.append(c)
    return "".join(chars)


class ElectraTokenizer:
    """Chinese BERT WordPiece tokenizer with HF BertTokenizer ids and char offsets into the original text."""

    def __init__(self, vocab_file, do_lower_case=True, model_max_length=512, *, max_input_chars_per_word=100):
        if not isinstance(do_lower_case, bool):
            raise ConfigError(f"do_lower_case must be true or false, got {do_lower_case!r}")
        if isinstance(model_max_length, bool) or not isinstance(model_max_length, int) or model_max_length < 4:
            raise ConfigError(f"model_max_length must be an int >= 4, got {model_max_length!r}")
        self.vocab_file, self.do_lower_case, self.model_max_length = str(vocab_file), do_lower_case, model_max_length
        self.vocab = read_vocab(vocab_file)
        self._id_to_token = sorted(self.vocab, key=self.vocab.get)
        (self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id,
         self.mask_token_id) = (self.vocab[t] for t in SPECIAL_TOKENS)
        self.special_token_ids = frozenset(self.vocab[t] for t in SPECIAL_TOKENS)
        tok = _pipeline(WordPiece(self.vocab, unk_token="[UNK]", max_input_chars_per_word=max_input_chars_per_word),
                        do_lower_case)
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", self.cls_token_id), ("[SEP]", self.sep_token_id)])
        tok.add_special_tokens(list(SPECIAL_TOKENS))
        self._base = tok
        self._base_json = tok.to_str()
        self.max_input_chars_per_word = max_input_chars_per_word
        unk = self.unk_token_id
        self._char_ids = {c: self.vocab.get(c, unk) for c in standalone_chars()}
        self._char_ids[" "] = -1  # a word boundary, no token
        self._word_ids = {}  # WordPiece ids of letter / digit runs seen so far
        self._configured = {}  # (max_len, strategy, padding) -> Tokenizer with that truncation and padding

    @classmethod
    def from_pretrained(cls, path):
        """Load from a directory holding vocab.txt (+ optional tokenizer_config.json) or from a vocab.txt path."""
        path = os.fspath(path)
        if not os.path.isdir(path):
            return cls(path)
        if os.path.isfile(os.path.join(path, MANIFEST_NAME)):  # a folder this project wrote: a cut vocab is refused
            verify_manifest(path, WeightsError, names={VOCAB_NAME, CONFIG_NAME})
        kwargs, config_path = {}, os.path.join(path, CONFIG_NAME)
        if os.path.exists(config_path):
            config = read_json_file(config_path, "tokenizer config")
            lower = config.get("do_lower_case", True)
            if config.get("tokenize_chinese_chars", True) is not True or \
                    config.get("strip_accents") not in (None, lower):
                raise ConfigError(f"{config_path}: only tokenize_chinese_chars=true and strip_accents=null "
                                  f"(following do_lower_case) are supported")
            kwargs["do_lower_case"] = lower
            limit = config.get("model_max_length")
            if limit is not None and not (isinstance(limit, int) and limit >= 10**12):  # HF's int(1e30): no limit
                kwargs["model_max_length"] = limit
        return cls(os.path.join(path, VOCAB_NAME), **kwargs)

    def save_pretrained(self, directory):
        """Write vocab.txt and tokenizer_config.json (each atomically) into `directory`; return their paths."""
        vocab_path, config_path = os.path.join(directory, VOCAB_NAME), os.path.join(directory, CONFIG_NAME)
        write_text(vocab_path, "\n".join(self._id_to_token) + "\n")
        write_json(config_path, {"tokenizer_class": "ElectraTokenizer", "do_lower_case": self.do_lower_case,
                                 "model_max_length": self.model_max_length})
        update_manifest(directory, [VOCAB_NAME, CONFIG_NAME])
        return [vocab_path, config_path]

    @property
    def vocab_size(self):
        return len(self._id_to_token)

    def tokenize(self, text):
        """WordPiece tokens of `text`, without special tokens and without truncation."""
        return self._base.encode(text, add_special_tokens=False).tokens

    def convert_tokens_to_ids(self, tokens):
        """Id of a token (or list of ids of a list); unknown tokens give unk_token_id."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        return [self.vocab.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        """Token of an id (or list of tokens of a list); DataError for an id outside the vocab."""
        single = isinstance(ids, (int, np.integer))
        ids = self._check_ids([ids] if single else ids)
        tokens = [self._id_to_token[i] for i in ids]
        return tokens[0] if single else tokens

    def decode(self, ids, skip_special_tokens=True):
        """Text of ids as HF BertTokenizer.decode gives it: tokens joined by spaces (so CJK chars are space
        separated), "##" pieces glued on, English clean-up (" ." -> ".", " 's" -> "'s", ...)."""
        special = self.special_token_ids if skip_special_tokens else ()
        text = " ".join(self._id_to_token[i] for i in self._check_ids(ids) if i not in special)
        text = text.replace(" ##", "").strip()
        for old, new in _CLEANUP:
            text = text.replace(old, new)
        return text

    def _check_ids(self, ids):
        ids = ids.tolist() if isinstance(ids, np.ndarray) else [int(i) for i in ids]
        if ids and (min(ids) < 0 or max(ids) >= self.vocab_size):
            bad = next(i for i in ids if not 0 <= i < self.vocab_size)
            raise DataError(f"token id {bad} is outside the vocab (size {self.vocab_size})", field="ids")
        return ids

    def _fast_ids(self, text):
        """Token ids of `text` (no special tokens) by the pure-Python path, or None where it needs the Rust one."""
        ids = list(map(self._char_ids.get, text))
        if None in ids:
            return self._fast_ids_with_words(text)
        return [i for i in ids if i >= 0] if -1 in ids else ids

    def _fast_ids_with_words(self, text):
        out, start, lookup = [], 0, self._char_ids.get
        for run in _WORD_RUN.finditer(text):
            between = list(map(lookup, text[start:run.start()]))
            if None in between:
                return None
            out += [i for i in between if i >= 0]
            word = run.group()
            ids = self._word_ids.get(word)
            if ids is None:
                ids = self._word_ids[word] = self._wordpiece(word.lower() if self.do_lower_case else word)
                if len(self._word_ids) > 100_000:
                    self._word_ids.clear()
            out += ids
            start = run.end()
        rest = list(map(lookup, text[start:]))
        if None in rest:
            return None
        return out + [i for i in rest if i >= 0]

    def _wordpiece(self, word):
        """Greedy longest-match-first WordPiece of one word ("##" continuations); [UNK] for the whole word when a
        position matches nothing or the word is longer than max_input_chars_per_word."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token_id]
        ids, start, vocab = [], 0, self.vocab
        while start < len(word):
            prefix = "##" if start else ""
            for end in range(len(word), start, -1):
                found = vocab.get(prefix + word[start:end])
                if found is not None:
                    ids.append(found)
                    start = end
                    break
            else:
                return [self.unk_token_id]
        return ids

    def _encode_singles_fast(self, texts, max_seq_len, strategy):
        """encode_batch's output for single texts without padding or offsets: the Python path where it applies, one
        Rust call for the rest (in input order)."""
        cls, sep, budget = self.cls_token_id, self.sep_token_id, max_seq_len - 2 if strategy else None
        input_ids, rust = [], []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text #{i} is {type(text).__name__}, expected str")
            ids = self._fast_ids(text)
            if ids is None:
                rust.append(i)
                input_ids.append(None)
                continue
            input_ids.append([cls, *(ids[:budget] if budget is not None else ids), sep])
        if rust:
            tok = self._backend(max_seq_len, strategy, None)
            for i, enc in zip(rust, self._run(tok.encode_batch, [texts[i] for i in rust])):
                input_ids[i] = enc.ids
        return {"input_ids": input_ids, "token_type_ids": [[0] * len(ids) for ids in input_ids],
                "attention_mask": [[1] * len(ids) for ids in input_ids]}

    def _configure(self, max_seq_len, truncation, padding, is_pair):
        """Check the options; return (strategy, padding, max length)."""
        try:
            strategy, pad = _TRUNCATION[truncation], _PADDING[padding]
        except (KeyError, TypeError):
            raise ConfigError(f"truncation must be one of {sorted(map(str, _TRUNCATION))} and padding one of "
                              f"{sorted(map(str, _PADDING))}; got {truncation!r}, {padding!r}") from None
        if max_seq_len is None:
            max_seq_len = self.model_max_length
        elif isinstance(max_seq_len, bool) or not isinstance(max_seq_len, int) or max_seq_len < 3 + is_pair:
            raise ConfigError(f"max_seq_len must be an int >= {3 + is_pair} (room for the special tokens and one "
                              f"token), got {max_seq_len!r}")
        if strategy == "only_second" and not is_pair:
            raise ConfigError("truncation='only_second' needs text pairs")
        return strategy, pad, max_seq_len

    def _backend(self, max_seq_len, strategy, pad):
        """The Rust Tokenizer with this truncation and padding, built once per setting (calls may share one)."""
        key = (max_seq_len if strategy or pad == "max_length" else None, strategy, pad)
        tok = self._configured.get(key)
        if tok is None:
            tok = Tokenizer.from_str(self._base_json)
            if strategy:
                tok.enable_truncation(max_seq_len, strategy=strategy)
            if pad:
                tok.enable_padding(pad_id=self.pad_token_id, pad_token="[PAD]",
                                   length=max_seq_len if pad == "max_length" else None)
            if len(self._configured) >= 64:
                self._configured.clear()
            self._configured[key] = tok
        return tok

    @staticmethod
    def _run(encode_batch, inputs, add_special_tokens=True):
        try:
            return encode_batch(inputs, add_special_tokens=add_special_tokens)
        except TypeError:
            for i, item in enumerate(inputs):
                for part in item if isinstance(item, tuple) else (item,):
                    if not isinstance(part, str):
                        raise TypeError(f"text #{i} is {type(part).__name__}, expected str") from None
            raise

    def encode(self, text, text_pair=None, max_seq_len=None, truncation="longest_first", padding=False,
               return_offsets=False):
        """Ids, token types and attention mask of one text or pair; truncation counts [CLS]/[SEP].

        max_seq_len=None means model_max_length. With return_offsets: `offsets` (start, end) char offsets into the
        original text of the token's own segment ((0, 0) for special and pad tokens) and `sequence_ids`
        (None for special/pad tokens, 0 or 1 for the segment)."""
        if text_pair is not None:
            out = self.encode_batch([text], [text_pair], max_seq_len, truncation, padding, return_offsets)
            return {name: value[0] for name, value in out.items()}
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, expected str")
        strategy, pad, max_seq_len = self._configure(max_seq_len, truncation, padding, False)
        if not pad and not return_offsets and strategy in (None, "longest_first"):
            return {name: rows[0] for name, rows in self._encode_singles_fast([text], max_seq_len, strategy).items()}
        enc = self._backend(max_seq_len, strategy, pad).encode(text)
        out = {"input_ids": enc.ids, "token_type_ids": enc.type_ids, "attention_mask": enc.attention_mask}
        if return_offsets:
            out["offsets"], out["sequence_ids"] = enc.offsets, enc.sequence_ids
        return out

    __call__ = encode

    def encode_batch(self, texts, text_pairs=None, max_seq_len=None, truncation="longest_first", padding=False,
                     return_offsets=False, return_numpy=False):
        """`encode` over a batch in one Rust call: dict of lists of lists, or int64 arrays if return_numpy (needs
        padding; `sequence_ids` stays a list)."""
        if isinstance(texts, str) or isinstance(text_pairs, str):
            raise TypeError("encode_batch takes lists of texts; use encode for one text")
        texts = texts if isinstance(texts, list) else list(texts)
        is_pair = text_pairs is not None
        if is_pair:
            text_pairs = text_pairs if isinstance(text_pairs, list) else list(text_pairs)
            if len(text_pairs) != len(texts):
                raise ConfigError(f"{len(texts)} texts but {len(text_pairs)} text_pairs")
        strategy, pad, max_seq_len = self._configure(max_seq_len, truncation, padding, is_pair)
        if is_pair and strategy == "longest_first":
            out = self._encode_pairs_longest_first(texts, text_pairs, max_seq_len, pad, return_offsets)
        elif not is_pair and not pad and not return_offsets and strategy in (None, "longest_first"):
            out = self._encode_singles_fast(texts, max_seq_len, strategy)
        else:
            tok = self._backend(max_seq_len, strategy, pad)
            try:
                encs = self._run(tok.encode_batch, list(zip(texts, text_pairs)) if is_pair else texts)
            except Exception as e:
                if "runcation" not in str(e):
                    raise
                raise DataError(f"truncation={strategy!r} cannot fit max_seq_len={max_seq_len}: the segment it "
                                f"may not cut is too long alone", field="max_seq_len") from None
            out = {"input_ids": [e.ids for e in encs], "token_type_ids": [e.type_ids for e in encs],
                   "attention_mask": [e.attention_mask for e in encs]}
            if return_offsets:
                out["offsets"], out["sequence_ids"] = [e.offsets for e in encs], [e.sequence_ids for e in encs]
        if return_numpy:
            if len({len(ids) for ids in out["input_ids"]}) > 1:
                raise ConfigError("return_numpy needs sequences of one length: pass padding='max_length' or "
                                  "'longest' (with truncation when padding='max_length')")
            shape = (len(texts), len(out["input_ids"][0]) if texts else 0)
            for name in ("input_ids", "token_type_ids", "attention_mask"):
                out[name] = np.array(out[name], dtype=np.int64).reshape(shape)
            if return_offsets:
                out["offsets"] = np.array(out["offsets"], dtype=np.int64).reshape(shape + (2,))
        return out

    def _encode_pairs_longest_first(self, texts, text_pairs, max_seq_len, pad, return_offsets):
        """Pairs cut by Google's rule, assembled here: Rust's longest_first gives the odd token of an odd budget to
        the longer segment (B on a tie) where Google's pops one token at a time from the longer, B on a tie."""
        budget = max_seq_len - 3
        segment = self._backend(budget, "longest_first", None)  # cutting each to the budget keeps the split
        encs_a = self._run(segment.encode_batch, texts, add_special_tokens=False)
        encs_b = self._run(segment.encode_batch, text_pairs, add_special_tokens=False)
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        out = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
        if return_offsets:
            out["offsets"], out["sequence_ids"] = [], []
        for enc_a, enc_b in zip(encs_a, encs_b):
            ids_a, ids_b = enc_a.ids, enc_b.ids
            len_a, len_b = _longest_first(len(ids_a), len(ids_b), budget)
            out["input_ids"].append(cls + ids_a[:len_a] + sep + ids_b[:len_b] + sep)
            out["token_type_ids"].append([0] * (len_a + 2) + [1] * (len_b + 1))
            out["attention_mask"].append([1] * (len_a + len_b + 3))
            if return_offsets:
                out["offsets"].append([(0, 0)] + enc_a.offsets[:len_a] + [(0, 0)] + enc_b.offsets[:len_b] + [(0, 0)])
                out["sequence_ids"].append([None] + [0] * len_a + [None] + [1] * len_b + [None])
        if pad and out["input_ids"]:
            length = max_seq_len if pad == "max_length" else max(map(len, out["input_ids"]))
            fill = {"input_ids": self.pad_token_id, "token_type_ids": 0, "attention_mask": 0, "offsets": (0, 0),
                    "sequence_ids": None}
            for name, rows in out.items():
                for row in rows:
                    row.extend([fill[name]] * (length - len(row)))
        return out


def _longest_first(len_a, len_b, budget):
    """Kept lengths when one token at a time goes from the longer segment (from B on a tie) until both fit."""
    if len_a + len_b <= budget:
        return len_a, len_b
    if min(len_a, len_b) <= budget - min(len_a, len_b):
        return (len_a, budget - len_a) if len_a <= len_b else (budget - len_b, len_b)
    return budget - budget // 2, budget // 2


def _lines(files):
    for path in files:
        if not os.path.isfile(path):
            raise DataError("corpus file not found", path=path)
        for _, line in utf8_lines(path):
            if line.strip():
                yield line


def build_vocab(files, vocab_size, output_path, min_frequency=2, lowercase=True, limit_alphabet=None):
    """Train a WordPiece vocab on UTF-8 text files (one text per line) and write it atomically; return its path.

    Normalisation and pre-tokenisation are the encoder's, so every CJK char is a word (and a token). Ids: [PAD]=0,
    [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, then "##c" for every char c seen inside a word (sorted), the chars
    (sorted), then merged pieces. limit_alphabet=None keeps every char seen; an int keeps only that many most
    frequent chars (the rest become [UNK]). The same files and arguments give the same bytes."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= len(SPECIAL_TOKENS):
        raise ConfigError(f"vocab_size must be an int > {len(SPECIAL_TOKENS)}, got {vocab_size!r}")
    options = {} if limit_alphabet is None else {"limit_alphabet": limit_alphabet}

    def train(size, reserved):
        tok = _pipeline(WordPiece(unk_token="[UNK]", max_input_chars_per_word=100), lowercase)
        tok.train_from_iterator(_lines(files), trainer=WordPieceTrainer(
            vocab_size=size, min_frequency=min_frequency, show_progress=False, special_tokens=reserved,
            continuing_subword_prefix="##", **options))
        vocab = tok.get_vocab()
        return sorted(vocab, key=vocab.get)

    # The trainer numbers "##c" pieces in hash-map order and breaks ties between equally frequent merges by id, so
    # its output varies run to run. A first pass (no merges) finds the "##c" set; reserving it in sorted order
    # fixes every id and so every tie.
    continuations = sorted(t for t in train(1, list(SPECIAL_TOKENS)) if t.startswith("##"))
    tokens = train(vocab_size, list(SPECIAL_TOKENS) + continuations)
    if tuple(tokens[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise DataError("the trainer misplaced the special tokens", path=output_path)
    write_text(output_path, "\n".join(tokens) + "\n")
    return os.fspath(output_path)
