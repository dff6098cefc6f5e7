"""Pretraining data builder benchmark: tokens/s end to end (`pretrain.data.build_dataset`: read, tokenize, pack,
write shards and index) on the People's Daily corpus, with 1 and 2 worker processes (and 0: all in the main process).

The wall time is taken around the whole call, worker start-up (spawn) included, in a fresh process per run; the
corpus is the tag-stripped People's Daily text (bench/corpus.py) repeated `copies` times.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time

from bench import common, corpus


def corpus_copies(copies: int) -> str:
    """The plain corpus repeated `copies` times (cached beside it)."""
    src = corpus.corpus_path_plain()
    if copies == 1:
        return str(src)
    dst = corpus.cache_dir() / f"peoples_daily_199801_x{copies}.txt"
    if not dst.exists():
        from paddle_electra.fileio import write_bytes
        write_bytes(dst, src.read_bytes() * copies)
    return str(dst)


def worker(spec: dict) -> dict:
    from pretrain.data import BuildOptions, build_dataset

    source = corpus_copies(spec["copies"])
    out = tempfile.mkdtemp(prefix="pe-bench-data-")
    try:
        t0 = time.perf_counter()
        index = build_dataset([source], os.path.join(out, "data"), vocab=corpus.vocab_path(),
                              options=BuildOptions(max_seq_length=128), num_workers=spec["workers"], progress=False)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "build_s": index.get("build_seconds"), "num_tokens": index["num_tokens"],
            "num_examples": index["num_examples"], "tokens_per_s": index["num_tokens"] / wall,
            "bytes": os.path.getsize(source)}


def plan(level: str):
    """(corpus copies, repeats, worker counts)."""
    return {"quick": (1, 1, (1, 2)), "long": (3, 3, (0, 1, 2))}.get(level, (2, 1, (0, 1, 2)))


def run(level: str) -> dict:
    copies, repeats, worker_counts = plan(level)
    rows = []
    try:
        import pretrain.data  # noqa: F401
    except ImportError as e:
        return {"rows": [], "table": f"**Data builder**: skipped, pretrain.data not importable ({e})"}
    for workers in worker_counts:
        runs = []
        for _ in range(repeats):
            common.log(f"[data] build_dataset with {workers} workers ...")
            try:
                runs.append(common.run_worker("bench.data_builder", {"workers": workers, "copies": copies}, "ours"))
            except common.WorkerError as e:
                common.log(str(e))
                rows.append({"workers": workers, "error": str(e).splitlines()[0]})
                break
        if runs:
            runs.sort(key=lambda r: r["wall_s"])
            best = runs[len(runs) // 2]
            rows.append({"workers": workers, "tokens_per_s": best["tokens_per_s"], "wall_s": best["wall_s"],
                         "num_tokens": best["num_tokens"], "bytes": best["bytes"],
                         "walls": [round(r["wall_s"], 2) for r in runs]})
            common.log(f"    {best['tokens_per_s']:.0f} tokens/s")
    return {"rows": rows, "table": table(rows)}


def table(rows) -> str:
    one = next((r.get("tokens_per_s") for r in rows if r["workers"] == 1), None)
    body = []
    for r in rows:
        if "error" in r:
            body.append([f"{r['workers']}", "failed: " + r["error"][:60], "-", "-", "-"])
            continue
        body.append([f"{r['workers']}" + (" (in-process)" if r["workers"] == 0 else ""), r["tokens_per_s"],
                     common.ratio(r["tokens_per_s"], one), r["wall_s"], r["num_tokens"]])
    size = next((r["bytes"] for r in rows if "bytes" in r), None)
    return (f"**Pretraining data builder (pretrain.data.build_dataset, People's Daily, "
            f"{common.fmt(size / 1e6 if size else None)} MB, seq 128), end to end**\n\n" +
            common.markdown_table(["worker processes", "tokens/s", "vs 1 worker", "wall s", "tokens"], body))


if __name__ == "__main__":
    common.worker_main(worker)
