"""Tokenization benchmark: texts/s on People's Daily sentences (50k: the 19,484 lines cycled), ids checked.

(Named tokenization.py, not tokenize.py: a bench/tokenize.py would shadow the standard library's `tokenize`
module, which linecache and inspect import, whenever bench/ is on sys.path.)

Implementations, each in its own process, all truncating at 512 tokens with [CLS]/[SEP]:
- ours: `paddle_electra.tokenizer.ElectraTokenizer.encode_batch` (dict of id / type / mask lists);
- raw tokenizers: `tokenizers.BertWordPieceTokenizer(vocab).encode_batch`, plus reading `.ids` of each result
  (the least any caller does), and the bare call without reading anything;
- HF BertTokenizerFast (batch call), HF BertTokenizer (slow, pure Python), PaddleNLP ElectraTokenizer (pure Python).
Ids must equal ours text by text; differing texts are counted (PaddleNLP splits Unicode symbols, see environment.md).
"""
from __future__ import annotations

import zlib

from bench import common, corpus

MAX_LEN = 512


def build(impl: str, vocab: str):
    """texts -> list of id lists (the timed call; conversion to lists included where the API returns objects)."""
    if impl == "ours":
        from paddle_electra.tokenizer import ElectraTokenizer
        tok = ElectraTokenizer(vocab)
        return lambda texts: tok.encode_batch(texts, max_seq_len=MAX_LEN)["input_ids"]
    if impl in ("raw", "raw-bare"):
        from tokenizers import BertWordPieceTokenizer
        tok = BertWordPieceTokenizer(vocab, lowercase=True)
        tok.enable_truncation(MAX_LEN)
        if impl == "raw-bare":
            return lambda texts: tok.encode_batch(texts)
        return lambda texts: [e.ids for e in tok.encode_batch(texts)]
    if impl == "hf-fast":
        from transformers import BertTokenizerFast
        tok = BertTokenizerFast(vocab, do_lower_case=True)
        return lambda texts: tok(texts, truncation=True, max_length=MAX_LEN)["input_ids"]
    if impl == "hf-slow":
        from transformers import BertTokenizer
        tok = BertTokenizer(vocab, do_lower_case=True)
        return lambda texts: tok(texts, truncation=True, max_length=MAX_LEN)["input_ids"]
    if impl == "paddlenlp":
        from paddlenlp.transformers import ElectraTokenizer
        tok = ElectraTokenizer(vocab, do_lower_case=True)
        return lambda texts: tok(texts, max_length=MAX_LEN, truncation=True)["input_ids"]
    raise ValueError(impl)


def worker(spec: dict) -> dict:
    texts = corpus.texts(spec["n"], shuffle=False)
    fn = build(spec["impl"], corpus.vocab_path())
    fn(texts[:200])  # first-call set-up (vocab tries, thread pools)
    out = {}

    def once():
        out["ids"] = fn(texts)

    summary = common.time_repeats(once, 0, spec["repeats"])
    result = {**summary, "texts_per_s": len(texts) / summary["median_s"],
              "chars_per_text": sum(map(len, texts)) / len(texts)}
    if spec["impl"] != "raw-bare":
        result["crc"] = [zlib.crc32(",".join(map(str, ids)).encode()) for ids in out["ids"]]
    return result


CASES = [("ours", "paddle_electra ElectraTokenizer.encode_batch"),
         ("raw", "tokenizers BertWordPieceTokenizer.encode_batch + .ids"),
         ("raw-bare", "tokenizers encode_batch (Encoding objects only)"),
         ("hf-fast", "HF BertTokenizerFast (batch)"),
         ("hf-slow", "HF BertTokenizer (slow)"),
         ("paddlenlp", "PaddleNLP ElectraTokenizer")]
SLOW = ("hf-slow", "paddlenlp")


def plan(level: str):
    """(texts for fast tokenizers, texts for the pure-Python ones, repeats fast, repeats slow)."""
    return {"quick": (10000, 2000, 3, 1), "long": (50000, 50000, 5, 2)}.get(level, (50000, 50000, 3, 1))


def run(level: str) -> dict:
    n_fast, n_slow, rep_fast, rep_slow = plan(level)
    results, rows = {}, []
    for impl, label in CASES:
        n = n_slow if impl in SLOW else n_fast
        spec = {"impl": impl, "n": n, "repeats": rep_slow if impl in SLOW else rep_fast}
        common.log(f"[tokenize] {label} on {n} texts ...")
        try:
            r = common.run_worker("bench.tokenization", spec, "ours")
        except common.WorkerError as e:
            common.log(str(e))
            rows.append({"impl": impl, "label": label, "error": str(e).splitlines()[0]})
            continue
        results[impl] = r
        common.log(f"    {r['texts_per_s']:.0f} texts/s")
    ours = results.get("ours")
    for impl, label in CASES:
        if impl not in results:
            continue
        r = results[impl]
        differ = None
        if ours is not None and "crc" in r:
            m = min(len(r["crc"]), len(ours["crc"]))
            differ = sum(a != b for a, b in zip(r["crc"][:m], ours["crc"][:m]))
            compared = m
        rows.append({"impl": impl, "label": label, "texts_per_s": r["texts_per_s"], "n": len(r.get("crc", [])) or None,
                     "spread": common.spread(r), "ids_differ": differ,
                     "ids_compared": compared if differ is not None else None,
                     "chars_per_text": r["chars_per_text"]})
    return {"rows": rows, "table": table(rows)}


def table(rows) -> str:
    ours = next((r.get("texts_per_s") for r in rows if r["impl"] == "ours"), None)
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["label"], "failed: " + r["error"][:60], "-", "-", "-"])
            continue
        ids = "-" if r["ids_differ"] is None else (
            "reference" if r["impl"] == "ours" else f"{r['ids_differ']} of {r['ids_compared']:,} texts differ")
        body.append([r["label"], r["texts_per_s"], common.ratio(ours, r["texts_per_s"]), ids,
                     f"{100 * r['spread']:.0f}%"])
    chars = next((r["chars_per_text"] for r in rows if "chars_per_text" in r), None)
    return (f"**Tokenization, People's Daily sentences ({common.fmt(chars)} characters on average), truncation at "
            f"{MAX_LEN}**\n\n" + common.markdown_table(["tokenizer", "texts/s", "ours / this", "ids vs ours", "spread"],
                                                       body))


if __name__ == "__main__":
    common.worker_main(worker)
