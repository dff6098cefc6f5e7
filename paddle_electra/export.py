"""Inference fast path: export a dygraph model to a static graph, run it with Paddle Inference (oneDNN) or ONNX Runtime.

Measured on a 2-core AMD CPU (bench/inference.py): the Paddle Inference predictor with oneDNN runs the small ELECTRA
forward several times faster than dygraph; onnxruntime is similar. Most of the remaining cost for real text is
padding, so `predict_bucketed` sorts texts by length and pads each batch only to its own longest member.

An export directory holds `inference.json` + `inference.pdiparams` (paddle.jit.save, PIR format), optionally
`model.onnx`, and `export.json` (written last: a directory without it is incomplete). Inputs are int64 [B, L] with
dynamic B and L, named after the model's forward arguments.
"""
from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .batching import length_buckets, pad_rows  # noqa: F401  (part of this module's API)
from .errors import ConfigError, WeightsError
from .fileio import write_json

MODEL_FILE, PARAMS_FILE, ONNX_FILE, MANIFEST_FILE = "inference.json", "inference.pdiparams", "model.onnx", "export.json"
FORMAT = "paddle-electra-export/1"


def _num_threads(num_threads: Optional[int]) -> int:
    if num_threads:
        return int(num_threads)
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def forward_input_names(model) -> List[str]:
    """Names of the tensor arguments of `model.forward` (positional parameters, in order)."""
    params = inspect.signature(type(model).forward).parameters
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [name for name, p in params.items() if name != "self" and p.kind in positional]


def export_for_inference(model, out_dir, input_names: Optional[Sequence[str]] = None, onnx: bool = False,
                         opset: int = 17) -> Dict[str, str]:
    """Trace `model` (eval mode) into a static graph with dynamic batch and length and save it to `out_dir`.

    Returns the paths written: model, params, manifest (and onnx when `onnx`). The model's own mode and forward are
    restored afterwards. Files are written into a temp folder beside `out_dir` and moved in; export.json goes last."""
    import paddle

    names = list(input_names or forward_input_names(model))
    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    was_training = model.training
    spec = [paddle.static.InputSpec([None, None], "int64", name=n) for n in names]
    manifest_path = os.path.join(out_dir, MANIFEST_FILE)
    if os.path.exists(manifest_path):
        os.remove(manifest_path)  # the directory is incomplete until the new manifest is written
    tmp = tempfile.mkdtemp(prefix=".export-", dir=out_dir)
    try:
        model.eval()
        static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
        try:
            paddle.jit.save(static, os.path.join(tmp, "inference"))
        finally:
            # to_static replaced model.forward in place; give the caller back its dygraph model
            model.__dict__.pop("forward", None)
            model._original_funcs.pop("forward", None)
        outputs = _output_names(os.path.join(tmp, MODEL_FILE), os.path.join(tmp, PARAMS_FILE))
        for name in (MODEL_FILE, PARAMS_FILE):
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
        paths = {"model": os.path.join(out_dir, MODEL_FILE), "params": os.path.join(out_dir, PARAMS_FILE)}
        if onnx:
            paths["onnx"] = export_onnx(out_dir, opset=opset)
        config = getattr(model, "config", None)
        manifest = {"format": FORMAT, "model_class": type(model).__name__, "inputs": names, "outputs": outputs,
                    "config": config.to_dict() if hasattr(config, "to_dict") else None,
                    "num_labels": getattr(model, "num_labels", None), "onnx": ONNX_FILE if onnx else None}
        paths["manifest"] = manifest_path
        write_json(manifest_path, manifest)
        return paths
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if was_training:
            model.train()


def _output_names(model_file, params_file) -> List[str]:
    """Fetch names of a saved program, read back through a throwaway predictor (no oneDNN, one thread)."""
    from paddle import inference
    config = inference.Config(model_file, params_file)
    config.disable_glog_info()
    config.switch_ir_optim(False)
    return list(inference.create_predictor(config).get_output_names())


def read_manifest(export_dir) -> dict:
    """export.json of an export directory; WeightsError if the export is incomplete or not ours."""
    path = os.path.join(os.fspath(export_dir), MANIFEST_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise WeightsError(f"{path}: missing; {export_dir} is not a complete export "
                           f"(run paddle_electra.export.export_for_inference)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: not valid UTF-8 JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise WeightsError(f"{path}: field 'format' is not {FORMAT!r}")
    return manifest


def export_onnx(export_dir, onnx_path=None, opset: int = 17) -> str:
    """Convert an exported Paddle program to ONNX with paddle2onnx (onnxoptimizer: the default optimizer tool
    pip-installs a package at export time). Returns the .onnx path (written atomically)."""
    import paddle2onnx
    from .fileio import atomic_path

    export_dir = os.fspath(export_dir)
    onnx_path = os.fspath(onnx_path or os.path.join(export_dir, ONNX_FILE))
    with atomic_path(onnx_path) as tmp:
        paddle2onnx.export(os.path.join(export_dir, MODEL_FILE), os.path.join(export_dir, PARAMS_FILE), tmp,
                           opset_version=opset, optimize_tool="onnxoptimizer", enable_onnx_checker=True)
    return onnx_path


# ---- runners: the same call on every backend: runner(*int64 arrays) -> array or tuple of arrays ------------------
class InferenceRunner:
    """Paddle Inference predictor over an export directory; oneDNN on CPU. One Config per predictor (Paddle
    refuses to reuse one).

    precision="bf16" (opt-in) runs the matmuls in bfloat16 through oneDNN: ~2.8x the fp32 throughput on CPUs with
    AMX (Xeon 4th gen+), logits within ~0.05 of fp32 instead of ~1e-6; ConfigError where the CPU lacks bf16."""

    def __init__(self, export_dir, num_threads: Optional[int] = None, use_onednn: bool = True,
                 onednn_cache_capacity: int = 32, precision: str = "fp32"):
        from paddle import inference

        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        if precision == "bf16" and not (use_onednn and bf16_supported()):
            raise ConfigError("precision='bf16' needs oneDNN (use_onednn=True) and a CPU with bfloat16 "
                              "instructions (AVX512-BF16 or AMX)")
        self.manifest = read_manifest(export_dir)
        export_dir = os.fspath(export_dir)
        config = inference.Config(os.path.join(export_dir, MODEL_FILE), os.path.join(export_dir, PARAMS_FILE))
        config.disable_glog_info()
        config.switch_ir_optim(True)
        config.set_cpu_math_library_num_threads(_num_threads(num_threads))
        if use_onednn:
            config.enable_mkldnn()
            # oneDNN caches primitives per input shape; bucketing keeps the set of shapes small, this bounds it
            config.set_mkldnn_cache_capacity(onednn_cache_capacity)
            if precision == "bf16":
                config.enable_mkldnn_bfloat16()
        self.predictor = inference.create_predictor(config)
        self.input_names = list(self.predictor.get_input_names())
        self.output_names = list(self.predictor.get_output_names())

    def __call__(self, *arrays):
        if len(arrays) != len(self.input_names):
            raise ConfigError(f"expected {len(self.input_names)} inputs {self.input_names}, got {len(arrays)}")
        for name, array in zip(self.input_names, arrays):
            self.predictor.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(array, dtype=np.int64))
        self.predictor.run()
        outs = [self.predictor.get_output_handle(n).copy_to_cpu() for n in self.output_names]
        return outs[0] if len(outs) == 1 else tuple(outs)


def bf16_supported() -> bool:
    """Whether this CPU runs oneDNN bfloat16 kernels natively (AVX512-BF16 or AMX)."""
    from paddle.base import core
    return bool(core.supports_bfloat16())


class OnnxRunner:
    """onnxruntime CPU session over `model.onnx` of an export directory (or an .onnx path)."""

    def __init__(self, path, num_threads: Optional[int] = None):
        import onnxruntime as ort

        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, ONNX_FILE)
        if not os.path.exists(path):
            raise WeightsError(f"{path}: ONNX model not found (export with onnx=True or call export_onnx)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = _num_threads(num_threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # paddle2onnx leaves unused constants that ORT warns about at load
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, *arrays):
        feed = {name: np.ascontiguousarray(a, dtype=np.int64) for name, a in zip(self.input_names, arrays)}
        outs = self.session.run(None, feed)
        return outs[0] if len(outs) == 1 else tuple(outs)


class DygraphRunner:
    """The same call interface over a dygraph model (eval mode, no autograd)."""

    def __init__(self, model):
        self.model = model
        model.eval()

    def __call__(self, *arrays):
        import paddle

        with paddle.no_grad():
            outs = self.model(*(paddle.to_tensor(np.asarray(a, dtype=np.int64)) for a in arrays))
        if isinstance(outs, (tuple, list)):
            return tuple(o.numpy() for o in outs)
        return outs.numpy()


# ---- length bucketing ------------------------------------------------------------------------------------------
def predict_bucketed(runner: Callable, encodings: Dict[str, Sequence[Sequence[int]]], batch_size: int = 32,
                     pad_id: int = 0, multiple: int = 8, bucket: bool = True):
    """Run `runner` over unpadded encodings (input_ids, token_type_ids, attention_mask lists) in length-sorted
    batches, each padded to its own longest member (rounded up to `multiple`, which bounds the number of distinct
    shapes that oneDNN compiles). Returns the per-example outputs stacked in the input order (axis 0); per-token
    outputs are padded to the longest batch with zeros. bucket=False keeps the input order (dynamic padding only)."""
    ids = encodings["input_ids"]
    n = len(ids)
    if n == 0:
        raise ConfigError("predict_bucketed needs at least one example")
    batches = length_buckets([len(r) for r in ids], batch_size) if bucket else \
        [np.arange(i, min(n, i + batch_size)) for i in range(0, n, batch_size)]
    names = ("input_ids", "token_type_ids", "attention_mask")
    results = None
    for index in batches:
        arrays = [pad_rows((encodings[k][i] for i in index), pad_id if k == "input_ids" else 0, multiple)
                  for k in names]
        outs = runner(*arrays)
        single = not isinstance(outs, tuple)
        outs = (outs,) if single else outs
        if results is None:
            results = [[None] * n for _ in outs]
        for slot, out in enumerate(outs):
            for j, i in enumerate(index):
                results[slot][i] = out[j]
    stacked = tuple(_stack(r) for r in results)
    return stacked[0] if single else stacked


def _stack(rows):
    shapes = {r.shape for r in rows}
    if len(shapes) == 1:
        return np.stack(rows)
    width = max(r.shape[0] for r in rows)  # per-token outputs of different padded lengths
    out = np.zeros((len(rows), width) + rows[0].shape[1:], dtype=rows[0].dtype)
    for i, r in enumerate(rows):
        out[i, :r.shape[0]] = r
    return out
