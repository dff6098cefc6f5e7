"""Inference fast path: export a dygraph model to a static graph, run it with Paddle Inference (oneDNN) or ONNX Runtime.

Measured on a 2-core AMD CPU (bench/inference.py): the Paddle Inference predictor with oneDNN runs the small ELECTRA
forward several times faster than dygraph; onnxruntime is similar. Most of the remaining cost for real text is
padding, so `predict_bucketed` sorts texts by length and pads each batch only to its own longest member.

An export directory holds `inference.json` + `inference.pdiparams` (paddle.jit.save, PIR format), optionally
`model.onnx` (and its int8 form `model.int8.onnx`: weights of every matmul with a constant operand in int8,
activations quantized per call, ONNX Runtime's dynamic quantization), and `manifest.json` (the project's one manifest
format, fileio: each file's size and sha256, plus the model's inputs, outputs and config). The folder is written
whole through fileio.atomic_folder. Inputs are int64 [B, L] with dynamic B and L, named after the model's forward
arguments.
"""
from __future__ import annotations

import inspect
import os
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .batching import length_buckets, pad_rows  # noqa: F401  (part of this module's API)
from .errors import ConfigError, WeightsError
from . import fileio

MODEL_FILE, PARAMS_FILE, ONNX_FILE = "inference.json", "inference.pdiparams", "model.onnx"
MANIFEST_FILE = fileio.MANIFEST_NAME
INT8_ONNX_FILE = "model.int8.onnx"
ONNX_PRECISIONS = {"fp32": ONNX_FILE, "int8": INT8_ONNX_FILE}
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
                         opset: int = 17, int8: bool = False) -> Dict[str, str]:
    """Trace `model` (eval mode) into a static graph with dynamic batch and length and save it as the folder `out_dir`
    (replaced whole: fileio.atomic_folder, so readers see the old export or the new one, never a mix).

    Returns the paths written: model, params, manifest (and onnx when `onnx`, onnx_int8 when `int8`, which implies
    `onnx`). The model's own mode and forward are restored afterwards."""
    import paddle

    names = list(input_names or forward_input_names(model))
    out_dir = os.path.abspath(os.fspath(out_dir))
    was_training = model.training
    spec = [paddle.static.InputSpec([None, None], "int64", name=n) for n in names]
    try:
        with fileio.atomic_folder(out_dir) as staging:
            model.eval()
            static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
            try:
                paddle.jit.save(static, os.path.join(staging, "inference"))
            finally:
                # to_static replaced model.forward in place; give the caller back its dygraph model
                model.__dict__.pop("forward", None)
                model._original_funcs.pop("forward", None)
            outputs = _output_names(os.path.join(staging, MODEL_FILE), os.path.join(staging, PARAMS_FILE))
            if onnx or int8:
                export_onnx(staging, opset=opset)
            if int8:
                quantize_onnx(staging)
            config = getattr(model, "config", None)
            fileio.write_manifest(
                staging, format=FORMAT, model_class=type(model).__name__, inputs=names, outputs=outputs,
                config=config.to_dict() if hasattr(config, "to_dict") else None,
                num_labels=getattr(model, "num_labels", None), onnx=ONNX_FILE if onnx or int8 else None,
                onnx_int8=INT8_ONNX_FILE if int8 else None)
    finally:
        if was_training:
            model.train()
    paths = {"model": os.path.join(out_dir, MODEL_FILE), "params": os.path.join(out_dir, PARAMS_FILE),
             "manifest": os.path.join(out_dir, MANIFEST_FILE)}
    if onnx or int8:
        paths["onnx"] = os.path.join(out_dir, ONNX_FILE)
    if int8:
        paths["onnx_int8"] = os.path.join(out_dir, INT8_ONNX_FILE)
    return paths


def _output_names(model_file, params_file) -> List[str]:
    """Fetch names of a saved program, read back through a throwaway predictor (no oneDNN, one thread)."""
    from paddle import inference
    config = inference.Config(model_file, params_file)
    config.disable_glog_info()
    config.switch_ir_optim(False)
    return list(inference.create_predictor(config).get_output_names())


def read_manifest(export_dir) -> dict:
    """manifest.json of an export directory, its files checked (size and sha256); WeightsError if the export is
    incomplete, damaged or not ours."""
    export_dir = os.fspath(export_dir)
    path = os.path.join(export_dir, MANIFEST_FILE)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: missing; {export_dir} is not a complete export "
                           f"(run paddle_electra.export.export_for_inference)")
    manifest = fileio.read_manifest(export_dir, WeightsError)
    if manifest.get("format") != FORMAT:
        raise WeightsError(f"{path}: field 'format' is not {FORMAT!r}")
    return fileio.verify_manifest(export_dir, WeightsError)


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


def quantize_onnx(export_dir, out_path=None) -> str:
    """int8 form of an export's model.onnx (dynamic quantization): the weight operand of every MatMul stored as int8
    with one symmetric scale per output column, activations quantized to uint8 per call (DynamicQuantizeLinear ->
    MatMulInteger -> Cast -> Mul by the two scales; ONNX Runtime fuses the chain into one kernel, with VNNI /
    AMX-INT8 code on CPUs that have them). Attention's two matmuls (no constant operand), LayerNorm, softmax and the
    embeddings stay fp32. Returns the path (written atomically; default `model.int8.onnx` beside model.onnx).

    Written here rather than with onnxruntime.quantization: that package imports torch and ml_dtypes when they are
    installed (seconds and ~300 MB in a serving process), and it quantizes only initializers, while paddle2onnx
    writes weights as Constant nodes (weights_as_initializers moves them first)."""
    import onnx
    from .fileio import atomic_path

    export_dir = os.fspath(export_dir)
    source = os.path.join(export_dir, ONNX_FILE)
    if not os.path.isfile(source):
        raise WeightsError(f"{source}: ONNX model not found (export with onnx=True first)")
    out_path = os.fspath(out_path or os.path.join(export_dir, INT8_ONNX_FILE))
    model = onnx.load(source)
    weights_as_initializers(model.graph)
    quantize_weight_matmuls(model.graph)
    with atomic_path(out_path) as target:
        onnx.save(model, target)
    if os.path.dirname(os.path.abspath(out_path)) == os.path.abspath(export_dir) and \
            os.path.isfile(os.path.join(export_dir, MANIFEST_FILE)):
        fileio.update_manifest(export_dir, [os.path.basename(out_path)])  # the export's manifest covers it too
    return out_path


def quantize_weight_matmuls(graph) -> int:
    """Replace every MatMul whose second operand is a 2-D float initializer W [K, N] by the dynamic int8 chain:
    x -> DynamicQuantizeLinear -> (x_q uint8, x_scale, x_zero) ; MatMulInteger(x_q, W_q, x_zero, 0) -> int32 ->
    Cast float -> Mul (x_scale * w_scale[N]). W_q = round(W / w_scale) in [-127, 127], w_scale = max|W[:, n]| / 127
    (symmetric, so W's zero point is 0). Returns how many MatMuls were replaced. In place."""
    from onnx import TensorProto, helper, numpy_helper

    weights = {t.name: t for t in graph.initializer}
    nodes, replaced = [], 0
    for node in graph.node:
        tensor = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if tensor is None or len(tensor.dims) != 2 or tensor.data_type != TensorProto.FLOAT:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(tensor)
        scale = np.abs(w).max(axis=0) / 127.0
        scale[scale == 0] = 1.0  # an all-zero column quantizes to zeros under any scale
        stem = f"{node.output[0]}.int8"
        graph.initializer.extend([
            numpy_helper.from_array(np.clip(np.rint(w / scale), -127, 127).astype(np.int8), stem + ".w"),
            numpy_helper.from_array(scale.astype(np.float32), stem + ".w_scale"),
            numpy_helper.from_array(np.array(0, dtype=np.int8), stem + ".w_zero")])
        x = node.input[0]
        nodes += [
            helper.make_node("DynamicQuantizeLinear", [x], [stem + ".x", stem + ".x_scale", stem + ".x_zero"]),
            helper.make_node("MatMulInteger", [stem + ".x", stem + ".w", stem + ".x_zero", stem + ".w_zero"],
                             [stem + ".acc"]),
            helper.make_node("Cast", [stem + ".acc"], [stem + ".acc_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [stem + ".x_scale", stem + ".w_scale"], [stem + ".scale"]),
            helper.make_node("Mul", [stem + ".acc_f", stem + ".scale"], [node.output[0]])]
        replaced += 1
    used = {name for n in nodes for name in n.input}
    kept = [t for t in graph.initializer if t.name in used or t.name not in weights]  # drop the fp32 weights
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return replaced


def weights_as_initializers(graph) -> int:
    """Move the tensors of Constant nodes into graph initializers (same names) and let the readers of an Identity of
    an initializer read the initializer itself; returns how many Constant nodes were moved. In place."""
    import onnx

    initializers = {t.name for t in graph.initializer}
    kept, moved = [], 0
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            initializers.add(tensor.name)
            moved += 1
        else:
            kept.append(node)
    graph_outputs = {o.name for o in graph.output}
    alias, nodes = {}, []
    for node in kept:
        if node.op_type == "Identity" and node.input[0] in initializers and node.output[0] not in graph_outputs:
            alias[node.output[0]] = node.input[0]
        else:
            nodes.append(node)
    for node in nodes:
        for i, name in enumerate(node.input):
            while name in alias:
                name = alias[name]
            node.input[i] = name
    del graph.node[:]
    graph.node.extend(nodes)
    return moved


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
    """onnxruntime CPU session over `model.onnx` (precision "fp32") or `model.int8.onnx` ("int8") of an export
    directory, or over an .onnx path."""

    def __init__(self, path, num_threads: Optional[int] = None, precision: str = "fp32"):
        import onnxruntime as ort

        if precision not in ONNX_PRECISIONS:
            raise ConfigError(f"precision must be one of {sorted(ONNX_PRECISIONS)}, got {precision!r}")
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, ONNX_PRECISIONS[precision])
        if not os.path.exists(path):
            raise WeightsError(f"{path}: ONNX model not found (export with onnx=True / int8=True, or call export_onnx "
                               f"/ quantize_onnx)")
        self.precision = precision
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


class GatedRunner:
    """The int8 runner once it agrees with the fp32 runner, else the fp32 runner.

    Until `check_rows` rows have gone through, every call runs both and returns the fp32 outputs; the argmax over the
    last axis of every output (class of a sentence or token, start or end of an answer) is compared, over the rows'
    real tokens where an output has one value per token (the attention mask is the third input of each text).
    Then `choice` becomes "int8" if the share of equal argmaxes is at least `min_agreement`, else "fp32", and
    later calls run that runner alone. `on_choice(choice, agreement, compared, rows)` is called once, when it is
    made (compared: argmaxes compared, rows: rows that went through both)."""

    def __init__(self, fp32, int8, check_rows: int = 64, min_agreement: float = 0.99, on_choice=None):
        self.fp32, self.int8, self.check_rows, self.min_agreement = fp32, int8, check_rows, min_agreement
        self.on_choice = on_choice
        self.choice, self.agreement, self.compared, self._equal, self._rows = None, None, 0, 0, 0

    def __call__(self, *arrays):
        if self.choice == "int8":
            return self.int8(*arrays)
        if self.choice == "fp32":
            return self.fp32(*arrays)
        want, got = self.fp32(*arrays), self.int8(*arrays)
        mask = np.asarray(arrays[2]).astype(bool) if len(arrays) >= 3 else None
        for a, b in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
            same = np.argmax(a, axis=-1) == np.argmax(b, axis=-1)
            if mask is not None and same.shape == mask.shape:  # one value per token: padding does not count
                same = same[mask]
            self._equal += int(same.sum())
            self.compared += int(same.size)
        self._rows += len(arrays[0])
        if self._rows >= self.check_rows:
            self.agreement = self._equal / max(1, self.compared)
            self.choice = "int8" if self.agreement >= self.min_agreement else "fp32"
            if self.choice == "int8":  # the runner not chosen is never called again: free its session
                self.fp32 = None
            else:
                self.int8 = None
            if self.on_choice is not None:
                self.on_choice(self.choice, self.agreement, self.compared, self._rows)
        return want


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
