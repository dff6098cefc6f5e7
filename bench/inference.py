"""Inference benchmark: sequence classification (Chinese-small shape, 2 labels) on People's Daily sentences.

Sentences keep their real lengths (94.5 characters on average, capped at 128 tokens). Every implementation gets
the same token ids (our tokenizer; they equal HF BertTokenizer's) and the same weights: a random-initialised
paddle_electra model saved once, loaded into PaddleNLP and HF through the weight maps in bench/shapes.py. Timing
excludes tokenization (bench/tokenization.py measures it) except for the PaddleHub module's predict(), which is
measured end to end as its users call it.

Paths:
- ours dygraph: ElectraForSequenceClassification, dynamic padding + length bucketing (predict_bucketed);
- ours exported: paddle.jit.save + Paddle Inference predictor with oneDNN (paddle_electra.export), bucketed;
- ours ONNX Runtime: the same export through paddle2onnx, bucketed;
- PaddleNLP dygraph: every batch padded to 128 (as hub's TransformerModule and most PaddleNLP scripts do), as
  shipped and with our environment; and with the same dynamic padding + bucketing as ours (our environment);
- HF torch eager: the same bucketing as ours (a strong baseline), and padded to 128 in full mode;
- PaddleHub module (paddle_electra.hub.module.ElectraHubModule.predict, batch_size as the case, tokenization
  included): dygraph, and with the exported-predictor fast path (see hub_module below).
Checks, in the bench: our three paths give equal logits; PaddleNLP's and HF's backbones give our [CLS] states
(their heads differ by design: an extra dense + GELU); the hub module's probabilities equal softmax(our logits).
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from bench import common, corpus, shapes

CHECK_N = 16  # sentences whose outputs every path returns for the equality checks
ATOL = 2e-4
BF16_ATOL = 0.1  # bfloat16 keeps 8 bits of mantissa: logits of the opt-in bf16 paths are checked against this
INT8_ATOL = 0.1  # int8 weights (one scale per matrix) and per-call uint8 activations: the int8 paths' bound


def tolerance(path: str) -> float:
    return BF16_ATOL if path.endswith("bf16") else INT8_ATOL if path.endswith("int8") else ATOL


def encodings(n: int, seed: int = 0):
    from paddle_electra.tokenizer import ElectraTokenizer
    tok = ElectraTokenizer(corpus.vocab_path())
    texts = corpus.texts(n, seed=seed)
    return texts, tok.encode_batch(texts, max_seq_len=128, truncation="longest_first"), tok


def batches(enc, batch_size: int, mode: str):
    """Padded int64 batches (index, ids, types, mask) for mode in {bucketed, padded128, dynamic}."""
    from paddle_electra.export import length_buckets, pad_rows
    n = len(enc["input_ids"])
    if mode == "bucketed":
        groups = length_buckets([len(r) for r in enc["input_ids"]], batch_size)
    else:
        groups = [np.arange(i, min(n, i + batch_size)) for i in range(0, n, batch_size)]
    out = []
    for index in groups:
        if mode == "padded128":
            arrays = [pad_rows([enc[k][i] + [0] * (128 - len(enc[k][i])) for i in index]) for k in
                      ("input_ids", "token_type_ids", "attention_mask")]
        else:
            arrays = [pad_rows([enc[k][i] for i in index], multiple=8 if mode == "bucketed" else 1) for k in
                      ("input_ids", "token_type_ids", "attention_mask")]
        out.append((index, *arrays))
    return out


# ---- workers ---------------------------------------------------------------------------------------------------
def prepare(spec):
    """Build the model once (seeded), save it, export it (Paddle Inference + ONNX)."""
    import paddle
    from paddle_electra.config import ElectraConfig
    from paddle_electra.export import export_for_inference
    from paddle_electra.modeling import ElectraForSequenceClassification
    from paddle_electra.tokenizer import ElectraTokenizer
    from paddle_electra.weights import save_safetensors, state_dict_numpy

    paddle.seed(0)
    model = ElectraForSequenceClassification(ElectraConfig(**shapes.config_fields("small", "discriminator")), 2)
    model.save_pretrained(spec["model_dir"], tokenizer=ElectraTokenizer(corpus.vocab_path()))
    # the hub module names its parameters model.*; a full checkpoint lets it carry our head too
    save_safetensors({f"model.{k}": v for k, v in state_dict_numpy(model).items()}, spec["hub_checkpoint"])
    t0 = time.perf_counter()
    try:
        export_for_inference(model, spec["export_dir"], onnx=True, int8=True)
    except Exception as e:  # noqa: BLE001  (reported in the table; the dygraph rows still run)
        return {"export_error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    return {"export_s": time.perf_counter() - t0}


def load_ours(model_dir):
    from paddle_electra.modeling import ElectraForSequenceClassification
    model = ElectraForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    model.eval()
    return model


def build(impl, spec):
    """(runner(ids, types, mask) -> logits, backbone_cls(ids, types, mask) -> [B, H] or None)."""
    if impl in ("ours-dygraph", "ours-exported", "ours-onnx", "ours-onnx-int8", "ours-exported-bf16"):
        import paddle
        from paddle_electra.export import DygraphRunner, InferenceRunner, OnnxRunner
        model = load_ours(spec["model_dir"])

        def cls_state(ids, types, mask):
            with paddle.no_grad():
                return model.electra(*(paddle.to_tensor(a) for a in (ids, types, mask))).last_hidden_state[:, 0].numpy()

        runner = {"ours-dygraph": lambda: DygraphRunner(model),
                  "ours-exported": lambda: InferenceRunner(spec["export_dir"]),
                  "ours-onnx": lambda: OnnxRunner(spec["export_dir"]),
                  "ours-onnx-int8": lambda: OnnxRunner(spec["export_dir"], precision="int8"),
                  "ours-exported-bf16": lambda: InferenceRunner(spec["export_dir"], precision="bf16")}[impl]()
        return runner, cls_state
    if impl == "paddlenlp":
        import paddle
        from paddlenlp.transformers import ElectraConfig, ElectraForSequenceClassification
        from paddle_electra.weights import WEIGHTS_NAME, load_safetensors
        fields = shapes.config_fields("small", "discriminator")
        model = ElectraForSequenceClassification(ElectraConfig(**fields, num_labels=2))
        state = shapes.ours_to_paddlenlp_backbone(load_safetensors(os.path.join(spec["model_dir"], WEIGHTS_NAME)),
                                                  fields["num_hidden_layers"])
        missing, unexpected = model.set_state_dict(state)
        if unexpected or any(not k.startswith("classifier.") for k in missing):
            raise RuntimeError(f"PaddleNLP weight map: missing {missing}, unexpected {unexpected}")
        model.eval()

        def run(ids, types, mask):  # its 2-D attention_mask would be read as additive: pads are found from ids
            with paddle.no_grad():
                return model(input_ids=paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types)).numpy()

        def cls_state(ids, types, mask):
            with paddle.no_grad():
                return model.electra(paddle.to_tensor(ids), paddle.to_tensor(types))[:, 0].numpy()

        return run, cls_state
    if impl in ("hf", "hf-bf16", "hf-int8"):
        import contextlib
        import torch
        from transformers import ElectraConfig, ElectraForSequenceClassification
        from paddle_electra.config import ElectraConfig as OurConfig
        from paddle_electra.weights import WEIGHTS_NAME, load_safetensors
        fields = shapes.config_fields("small", "discriminator")
        model = ElectraForSequenceClassification(ElectraConfig(**fields, num_labels=2))
        state = shapes.ours_to_hf_backbone(load_safetensors(os.path.join(spec["model_dir"], WEIGHTS_NAME)),
                                           OurConfig(**fields))
        result = model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        if result.unexpected_keys or any(not k.startswith("classifier.") for k in result.missing_keys):
            raise RuntimeError(f"HF weight map: {result}")
        model.eval()
        if impl == "hf-int8":  # PyTorch's own dynamic int8: every nn.Linear, activations quantized per call
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

        def autocast():
            if impl == "hf-bf16":
                return torch.autocast("cpu", dtype=torch.bfloat16)
            return contextlib.nullcontext()

        def run(ids, types, mask):
            with torch.inference_mode(), autocast():
                return model(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(types),
                             attention_mask=torch.from_numpy(mask)).logits.float().numpy()

        def cls_state(ids, types, mask):
            with torch.inference_mode(), autocast():
                return model.electra(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(types),
                                     attention_mask=torch.from_numpy(mask)).last_hidden_state[:, 0].float().numpy()

        return run, cls_state
    raise ValueError(impl)


def hub_module(impl: str, model_dir, checkpoint):
    """The PaddleHub module: its default predict() (exported model, precision "auto"), the fp32 exported path, or
    dygraph (fast_inference=False)."""
    from paddle_electra.hub.module import ElectraHubModule
    kwargs = {"hub": {"fast_inference": False}, "hub-fast": {}, "hub-fast-fp32": {"precision": "fp32"}}[impl]
    return ElectraHubModule(task="seq-cls", model_dir=model_dir, load_checkpoint=checkpoint, **kwargs)


def worker(spec: dict) -> dict:
    if spec["kind"] == "prepare":
        return prepare(spec)
    impl, mode, batch_size = spec["impl"], spec["mode"], spec["batch"]
    texts, enc, tok = encodings(spec["n"], seed=spec.get("seed", 0))
    result = {}
    if impl.startswith("hub"):
        t0 = time.perf_counter()
        module = hub_module(impl, spec["model_dir"], spec["hub_checkpoint"])
        data = [[t] for t in texts]
        # first call: the fast path exports (and precision "auto" checks int8 against fp32 on these 64 rows)
        module.predict(data[:64], max_seq_len=128, batch_size=batch_size)
        predictor = getattr(module, "_predictor", None)
        result["hub_path"] = getattr(predictor, "choice", None) or getattr(predictor, "precision", None) or \
            (type(predictor).__name__ if predictor is not None else "dygraph")
        result["first_call_s"] = time.perf_counter() - t0
        outputs = {}

        def one_pass():
            outputs["probs"] = module.predict(data, max_seq_len=128, batch_size=batch_size, return_prob=True)[1]

        summary = common.time_repeats(one_pass, spec["warmup"], spec["repeats"], budget_s=40)
        result["check_probs"] = outputs["probs"][:CHECK_N]
    else:
        runner, cls_state = build(impl, spec)
        planned = batches(enc, batch_size, mode)
        warm = batches({k: v[:min(len(v), 4 * batch_size)] for k, v in enc.items()}, batch_size, mode)

        def one_pass(plan=planned):
            for _, ids, types, mask in plan:
                runner(ids, types, mask)

        one_pass(warm)
        summary = common.time_repeats(one_pass, spec["warmup"], spec["repeats"], budget_s=40)
        check = {k: v[:CHECK_N] for k, v in enc.items()}
        (_, ids, types, mask), = batches(check, CHECK_N, "dynamic")
        result["check_logits"] = np.asarray(runner(ids, types, mask)).tolist()
        if spec.get("cls_check") and cls_state is not None:
            result["check_cls"] = np.asarray(cls_state(ids, types, mask)).tolist()
    lengths = [len(r) for r in enc["input_ids"]]
    return {**result, **summary, "sentences_per_s": spec["n"] / summary["median_s"],
            "mean_tokens": float(np.mean(lengths))}


# ---- orchestration ---------------------------------------------------------------------------------------------
CASES = [  # (impl, mode, env, label)
    ("ours-dygraph", "bucketed", "ours", "paddle_electra dygraph (bucketed)"),
    ("ours-exported", "bucketed", "ours", "paddle_electra exported predictor, oneDNN (bucketed)"),
    ("ours-onnx", "bucketed", "ours", "paddle_electra ONNX Runtime (bucketed)"),
    ("ours-onnx-int8", "bucketed", "ours", "paddle_electra ONNX Runtime int8, dynamic quantization (bucketed)"),
    ("paddlenlp", "padded128", "shipped", "PaddleNLP dygraph, padded to 128 (as shipped)"),
    ("paddlenlp", "padded128", "ours", "PaddleNLP dygraph, padded to 128 (our env)"),
    ("paddlenlp", "bucketed", "ours", "PaddleNLP dygraph (bucketed, our env)"),
    ("hf", "bucketed", "shipped", "HF torch eager (bucketed)"),
    ("hf", "padded128", "shipped", "HF torch eager, padded to 128"),
    ("ours-exported-bf16", "bucketed", "ours", "opt-in bf16: paddle_electra exported predictor, oneDNN bf16"),
    ("hf-bf16", "bucketed", "shipped", "opt-in bf16: HF torch eager, autocast bf16"),
    ("hf-int8", "bucketed", "shipped", "HF torch eager, dynamic int8 (quantize_dynamic of nn.Linear, bucketed)"),
    ("hub", "predict", "ours", "PaddleHub module predict(), dygraph"),
    ("hub-fast-fp32", "predict", "ours", "PaddleHub module predict(precision='fp32'), exported fp32"),
    ("hub-fast", "predict", "ours", "PaddleHub module predict(), default (exported, precision 'auto')"),
]


def plan(level: str):
    """(batch, sentences, warmup, repeats, (impl, mode) pairs skipped); each pass is capped at ~40 s of repeats."""
    if level == "quick":
        light = {("hf", "padded128"), ("paddlenlp", "bucketed"), ("hub", "predict"), ("hub-fast", "predict"),
                 ("hub-fast-fp32", "predict"), ("ours-exported-bf16", "bucketed"), ("hf-bf16", "bucketed"),
                 ("hf-int8", "bucketed")}
        return [(32, 64, 0, 2, light), (1, 16, 0, 2, light | {("paddlenlp", "padded128"), ("ours-onnx", "bucketed")})]
    if level == "long":
        return [(32, 512, 0, 3, set()), (1, 128, 0, 3, set())]
    return [(32, 256, 0, 3, set()),
            (1, 64, 0, 3, {("hf", "padded128"), ("ours-exported-bf16", "bucketed"), ("hf-bf16", "bucketed"),
                           ("hub-fast-fp32", "predict")})]


def run(level: str) -> dict:
    rows, checks = [], []
    with tempfile.TemporaryDirectory(prefix="pe-bench-infer-") as tmp:
        paths = {"model_dir": os.path.join(tmp, "model"), "export_dir": os.path.join(tmp, "export"),
                 "hub_checkpoint": os.path.join(tmp, "hub_checkpoint.safetensors")}
        common.log("[inference] preparing model and export ...")
        prep = common.run_worker("bench.inference", {"kind": "prepare", **paths}, "ours")
        needs_export = ("ours-exported", "ours-onnx", "ours-onnx-int8", "hub-fast", "hub-fast-fp32",
                        "ours-exported-bf16")
        for batch, n, warmup, repeats, skip in plan(level):
            results = {}
            for impl, mode, env, label in CASES:
                if (impl, mode) in skip or (impl, env) in skip:
                    continue
                if impl in needs_export and "export_error" in prep:
                    rows.append({"batch": batch, "impl": impl, "mode": mode, "env": env, "label": label,
                                 "error": "export failed: " + prep["export_error"]})
                    continue
                if impl.startswith("hub") and not hub_available():
                    rows.append({"batch": batch, "impl": impl, "label": label, "error": "hub_module not importable"})
                    continue
                spec = {"kind": "run", "impl": impl, "mode": mode, "batch": batch, "n": n, "warmup": warmup,
                        "repeats": repeats, "cls_check": batch == 32, **paths}
                common.log(f"[inference] b{batch} {label} ...")
                base = {"batch": batch, "impl": impl, "mode": mode, "env": env, "label": label}
                try:
                    r = common.run_worker("bench.inference", spec, env)
                except common.WorkerError as e:
                    common.log(str(e))
                    rows.append({**base, "error": str(e).splitlines()[0]})
                    continue
                results[(impl, mode, env)] = r
                rows.append({**base, "sentences_per_s": r["sentences_per_s"], "pass_s": r["median_s"],
                             "spread": common.spread(r), "peak_rss_mb": r["peak_rss_mb"], "n": n,
                             "mean_tokens": r["mean_tokens"], "first_call_s": r.get("first_call_s"),
                             "hub_path": r.get("hub_path")})
                common.log(f"    {r['sentences_per_s']:.1f} sentences/s")
            checks += check_outputs(results, batch)
    return {"rows": rows, "checks": checks, "export_s": prep.get("export_s"), "export_error": prep.get("export_error"),
            "table": table(rows, checks)}


def hub_available() -> bool:
    try:
        import importlib.util
        return importlib.util.find_spec("paddle_electra.hub.module") is not None
    except ImportError:
        return False


def check_outputs(results: dict, batch: int) -> list:
    """Max abs differences against ours-dygraph; each row says whether it is within ATOL."""
    ref = results.get(("ours-dygraph", "bucketed", "ours"))
    if ref is None:
        return []
    out = []
    logits = np.asarray(ref["check_logits"])
    for key, r in results.items():
        if key[0] in ("ours-exported", "ours-onnx", "ours-onnx-int8", "ours-exported-bf16"):
            diff = float(np.abs(np.asarray(r["check_logits"]) - logits).max())
            tol = tolerance(key[0])
            out.append({"batch": batch, "path": key[0], "what": "logits", "max_abs_diff": diff, "ok": diff <= tol,
                        "tol": tol})
        if "check_cls" in r and key[0] in ("paddlenlp", "hf", "hf-bf16", "hf-int8") and "check_cls" in ref:
            diff = float(np.abs(np.asarray(r["check_cls"]) - np.asarray(ref["check_cls"])).max())
            tol = tolerance(key[0])
            out.append({"batch": batch, "path": f"{key[0]} ({key[1]}, {key[2]})", "what": "[CLS] state",
                        "max_abs_diff": diff, "ok": diff <= tol, "tol": tol})
        if "check_probs" in r:
            e = np.exp(logits - logits.max(-1, keepdims=True))
            diff = float(np.abs(np.asarray(r["check_probs"]) - e / e.sum(-1, keepdims=True)).max())
            path = r.get("hub_path") or ""
            tol = tolerance(path)
            out.append({"batch": batch, "path": f"{key[0]} ({path})" if path else key[0], "what": "probabilities",
                        "max_abs_diff": diff, "ok": diff <= tol, "tol": tol})
    return out


def table(rows, checks) -> str:
    out = []
    for batch in dict.fromkeys(r["batch"] for r in rows):
        case = [r for r in rows if r["batch"] == batch]
        exported = next((r.get("sentences_per_s") for r in case
                         if (r["impl"], r.get("mode"), r.get("env")) == ("ours-exported", "bucketed", "ours")), None)
        body = []
        for r in case:
            if "error" in r:
                body.append([r["label"], "failed: " + r["error"][:60], "-", "-", "-"])
                continue
            label = r["label"] + (f" -> runs {r['hub_path']}" if r.get("hub_path") else "")
            body.append([label, r["sentences_per_s"], common.ratio(exported, r["sentences_per_s"]),
                         r["peak_rss_mb"], f"{100 * r['spread']:.0f}%"])
        n = next((r["n"] for r in case if "n" in r), "?")
        mean = next((r["mean_tokens"] for r in case if "mean_tokens" in r), None)
        out.append(f"**Inference, seq-cls small, batch {batch}, {n} People's Daily sentences "
                   f"(mean {common.fmt(mean)} tokens, cap 128)**\n\n" + common.markdown_table(
                       ["path", "sentences/s", "exported / this", "peak RSS MiB", "spread"], body))
    if checks:
        out.append("**Output equality (max abs difference against paddle_electra dygraph)**\n\n" +
                   common.markdown_table(["batch", "path", "compared", "max abs diff", "tolerance", "within"],
            [[c["batch"], c["path"], c["what"], f"{c['max_abs_diff']:.2e}", f"{c['tol']:g}", "yes" if c["ok"] else "NO"]
             for c in checks]))
    return "\n\n".join(out)


if __name__ == "__main__":
    common.worker_main(worker)
