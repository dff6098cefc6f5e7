"""ElectraHubModule: the one implementation behind every PaddleHub module in `modules/` (chinese-electra-small, ...).

It follows the published PaddleHub interface of chinese-electra-small 2.0.x: `hub.Module(name=..., task=...,
load_checkpoint=..., label_map=..., num_classes=..., suffix=...)`, `predict`, `get_embedding`, `get_tokenizer`,
`training_step` / `validation_step` for `hub.Trainer`, and a `@serving` method for `hub serving`. It adds the task
'reading-comprehension' (CMRC 2018 / DRCD span extraction). Differences from hub's TransformerModule, on purpose:
- predict pads each batch to its longest member, not every input to max_seq_len, and groups inputs of similar length
  into batches (results come back in input order);
- it never switches Paddle's global device unless use_gpu=True asks for the GPU;
- weights come from the module folder's model.safetensors (no code runs on load); `load_checkpoint` takes hub.Trainer's
  `model.pdparams` (a pickle) through an allow-list unpickler that only rebuilds numpy arrays, or a .safetensors file;
- token-cls returns one label per WordPiece token of the text (no [CLS]/[SEP]/padding labels to strip).
- on CPU, predict runs the exported model (ONNX Runtime, or a Paddle Inference predictor with oneDNN where
  onnxruntime is not installed) once a call brings FAST_MIN_EXAMPLES examples, re-exporting when the weights change
  (`fast_inference=False` keeps dygraph); `precision="auto"` (default) runs the int8 ONNX model (dynamic
  quantization, paddle_electra.export.quantize_onnx) once it has agreed with fp32 on the first GATE_ROWS rows after
  an export, else fp32; "fp32", "int8" and "bf16" (Paddle Inference, oneDNN) force a path; the path goes to the log;
- seq-cls takes `pooling="mean"` (the mean of the token states instead of [CLS]; modeling.SequenceClassificationHead).
The model directory (config.json, vocab.txt, model.safetensors) is the installed module folder (hub sets
`cls.directory`) or `model_dir=`. The heads come from paddle_electra.modeling; this file holds no model code.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import tempfile
import warnings

import numpy as np
import paddle
import paddle.nn.functional as F
from paddlehub.module.module import RunModule, serving
from paddlenlp.transformers import PretrainedTokenizer  # hub's datasets require one (paddlehub imports paddlenlp)

from .. import modeling, spans
from ..batching import length_buckets, pad_rows
from ..errors import ConfigError, DataError, ElectraError, WeightsError
from ..tokenizer import ElectraTokenizer
from ..weights import WEIGHTS_NAME, LoadReport, load_safetensors, load_state, read_config

logger = logging.getLogger(__name__)

TASKS = (None, "seq-cls", "token-cls", "text-matching", "reading-comprehension")
_TASK_ALIASES = {"sequence_classification": "seq-cls"}  # hub 1.x name, still accepted by hub's own module
# task -> model class of paddle_electra.modeling and whether it takes num_labels
_MODELS = {
    None: (modeling.ElectraEncoder, False),
    "seq-cls": (modeling.ElectraForSequenceClassification, True),
    "token-cls": (modeling.ElectraForTokenClassification, True),
    "text-matching": (modeling.ElectraForTextMatching, True),
    "reading-comprehension": (modeling.ElectraForQuestionAnswering, False),
}
# (module, name) pairs a paddle.save state dict needs: numpy arrays and their dtypes, nothing that can run code
_STATE_DICT_GLOBALS = frozenset({
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
})
_PADDLE_NAME_TABLE = "StructuredToParameterName@@"  # paddle.save's structured-name -> param-name side table


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array/dtype constructors; anything else is refused before it is called."""

    def __init__(self, file, source):
        super().__init__(file)
        self.source = source

    def find_class(self, module, name):
        if (module, name) in _STATE_DICT_GLOBALS:
            return super().find_class(module, name)
        raise WeightsError(f"{self.source}: refused to unpickle {module}.{name}: a state dict holds only numpy "
                           f"arrays, so this file is not a plain paddle.save state dict (it could run code). "
                           f"Pass allow_pickle=True only if you trust where the file came from.")


def load_pdparams(path, allow_pickle=False) -> dict:
    """Numpy state dict of a paddle.save'd `.pdparams` file (e.g. hub.Trainer's best_model/model.pdparams).

    By default the pickle is read with an allow-list that rebuilds numpy arrays and nothing else, so a crafted file
    cannot run code. allow_pickle=True falls back to paddle.load (full pickle: only for files you trust)."""
    path = os.fspath(path)
    if allow_pickle:
        warnings.warn(f"{path}: loading with full pickle (allow_pickle=True); this can run code from the file",
                      stacklevel=2)
        state = paddle.load(path, return_numpy=True)
    else:
        try:
            with open(path, "rb") as f:
                state = _StateDictUnpickler(f, path).load()
        except WeightsError:
            raise
        except OSError as err:
            raise WeightsError(f"{path}: cannot read checkpoint ({err.strerror})") from None
        except Exception as err:  # truncated or not a pickle at all
            raise WeightsError(f"{path}: not a readable paddle.save state dict ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict (name -> array), got {type(state).__name__}")
    tensors = {}
    for name, value in state.items():
        if name == _PADDLE_NAME_TABLE:
            continue
        value = np.asarray(value)
        if value.dtype == object:
            raise WeightsError(f"{path}: entry {name!r} is not a numeric array")
        tensors[name] = value
    return tensors


class HubTokenizer(ElectraTokenizer, PretrainedTokenizer):
    """ElectraTokenizer that hub's datasets (TextClassificationDataset, SeqLabelingDataset, TextMatchingDataset,
    ChnSentiCorp, ...) accept: they require a paddlenlp PretrainedTokenizer and call it with paddlenlp's keywords.

    Everything else is ElectraTokenizer's (same ids, same API); only the paddlenlp calling convention is added."""

    # plain class attributes shadow paddlenlp's special-token properties, so ElectraTokenizer's values are used
    pad_token_id = unk_token_id = cls_token_id = sep_token_id = mask_token_id = None
    pad_token, unk_token, cls_token, sep_token, mask_token = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    _HUB_KEYWORDS = ("pad_to_max_seq_len", "is_split_into_words", "return_length")

    def __call__(self, text, text_pair=None, max_seq_len=None, **kwargs):
        """ElectraTokenizer.encode, or paddlenlp's convention when called with its keywords (see _HUB_KEYWORDS)."""
        if not any(k in kwargs for k in self._HUB_KEYWORDS):
            return self.encode(text, text_pair, max_seq_len=max_seq_len, **kwargs)
        limit = max_seq_len or self.model_max_length
        if kwargs.get("is_split_into_words"):
            # hub passes WordPiece tokens it already split with _tokenize: map them, do not split them again
            ids = self.convert_tokens_to_ids(list(text))[:limit - 2]
            ids = [self.cls_token_id] + ids + [self.sep_token_id]
            out = {"input_ids": ids, "token_type_ids": [0] * len(ids)}
        else:
            enc = self.encode(text, text_pair, max_seq_len=limit)
            out = {"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"]}
        length = len(out["input_ids"])
        if kwargs.get("pad_to_max_seq_len") and max_seq_len:
            out["input_ids"] = out["input_ids"] + [self.pad_token_id] * (max_seq_len - length)
            out["token_type_ids"] = out["token_type_ids"] + [0] * (max_seq_len - length)
        if kwargs.get("return_length"):
            out["seq_len"] = length
        return out

    def _tokenize(self, text):
        return self.tokenize(text)


def _normalize_label_map(label_map, num_classes):
    """{class id: label} from hub's id -> label dict (keys may be JSON strings) or a label -> id dict."""
    if label_map is None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ConfigError(f"num_classes must be an int >= 2, got {num_classes!r}")
        return {i: i for i in range(num_classes)}
    if not isinstance(label_map, dict) or len(label_map) < 2:
        raise ConfigError(f"label_map must be a dict of at least 2 classes (id -> label), got {label_map!r}")

    def as_id(value):
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        return None

    key_ids = [as_id(k) for k in label_map]
    if all(i is not None for i in key_ids):
        mapping = dict(zip(key_ids, label_map.values()))
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in label_map.values()):
        mapping = {v: k for k, v in label_map.items()}  # label -> id, as hub's datasets build it
    else:
        raise ConfigError("label_map must map class ids 0..n-1 to labels (hub's convention) or labels to ids")
    if sorted(mapping) != list(range(len(label_map))):
        raise ConfigError(f"label_map ids must be exactly 0..{len(label_map) - 1}, got {sorted(mapping)}")
    return dict(sorted(mapping.items()))


def _chunk_tags(label_map, suffix):
    """Label list in BIO/BIOES prefix form for chunk F1, or None when the labels are not chunk tags."""
    tags = []
    for label in label_map.values():
        if not isinstance(label, str):
            return None
        if suffix and label != "O":  # hub's suffix=True means "PER-B" style: move the position mark to the front
            label = label[-1] + "-" + label[:-2] if len(label) > 2 and label[-2] == "-" else label
        if label != "O" and not (len(label) > 2 and label[0] in "BIES" and label[1] == "-"):
            return None
        tags.append(label)
    return tags


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class ElectraHubModule(paddle.nn.Layer, RunModule):
    """PaddleHub module over a paddle_electra model directory (see the module docstring for the interface)."""

    # hub's RunModule.__getattribute__ wraps methods of static-graph modules; a Layer never needs it
    __getattribute__ = object.__getattribute__
    directory = None  # set on the class by hub before __init__: the installed module folder
    name = version = None  # set by @moduleinfo on the generated shims

    # predict() on CPU exports the model (ONNX Runtime, else a Paddle Inference predictor with oneDNN) once it is asked
    # for this many examples: the export costs ~2 s, then predict runs ~3x faster than dygraph (bench/inference.py)
    FAST_MIN_EXAMPLES = 32
    # precision="auto" runs int8 once it has agreed with fp32 on this share of the argmaxes over the first GATE_ROWS
    # rows predicted after an export (both run for those rows and fp32's outputs are returned)
    PRECISIONS = ("auto", "fp32", "int8", "bf16")
    GATE_ROWS, GATE_AGREEMENT = 64, 0.99

    def __init__(self, task=None, load_checkpoint=None, label_map=None, num_classes=2, suffix=False,
                 model_dir=None, allow_pickle=False, dropout=0.1, fast_inference=True, pooling="cls",
                 backbone_dropout=None, precision="auto"):
        super(ElectraHubModule, self).__init__()
        if precision not in self.PRECISIONS:
            raise ConfigError(f"precision must be one of {self.PRECISIONS}, got {precision!r}")
        self.fast_inference, self.precision = bool(fast_inference), precision
        self._predictor = self._predictor_key = self._fast = None
        task = _TASK_ALIASES.get(task, task)
        if task not in TASKS:
            raise ConfigError(f"unknown task {task!r}; choose one of {TASKS}")
        self.task, self.suffix = task, bool(suffix)
        directory = model_dir if model_dir is not None else type(self).directory
        if directory is None:
            raise ConfigError("no model directory: load the module with hub.Module(name=...) / "
                              "hub.Module(directory=...) or pass model_dir=")
        self.directory = os.fspath(directory)
        weights_path = os.path.join(self.directory, WEIGHTS_NAME)
        if not os.path.isfile(weights_path):
            raise WeightsError(f"{weights_path}: weights file not found. A module folder needs config.json, vocab.txt "
                               f"and model.safetensors: build the archive with `python -m converters package`")
        config = read_config(self.directory)
        if backbone_dropout is not None:  # fine-tuning regularisation; predict() runs in eval mode either way
            if not 0.0 <= backbone_dropout < 1.0:
                raise ConfigError(f"backbone_dropout must be in [0, 1), got {backbone_dropout}")
            config = dataclasses.replace(config, hidden_dropout_prob=float(backbone_dropout),
                                         attention_probs_dropout_prob=float(backbone_dropout))
        self.tokenizer = HubTokenizer.from_pretrained(self.directory)
        if self.tokenizer.vocab_size > config.vocab_size:
            raise ConfigError(f"{self.directory}: vocab.txt has {self.tokenizer.vocab_size} tokens but config.json "
                              f"field 'vocab_size' is {config.vocab_size}")

        model_cls, takes_labels = _MODELS[task]
        self.label_map = _normalize_label_map(label_map, num_classes) if takes_labels else None
        self.num_classes = len(self.label_map) if takes_labels else None
        kwargs = {"num_labels": self.num_classes, "dropout": dropout} if takes_labels else {}
        if pooling != "cls":
            if task != "seq-cls":
                raise ConfigError(f"pooling={pooling!r} is a seq-cls option; task {task!r} has no pooled head")
            if pooling not in modeling.POOLINGS:
                raise ConfigError(f"unknown pooling {pooling!r}; choose one of {modeling.POOLINGS}")
            kwargs["pooling"] = pooling
        self.model = model_cls(config, **kwargs)
        self.load_report = self._load_backbone(weights_path)
        self._chunk_labels = _chunk_tags(self.label_map, self.suffix) if task == "token-cls" else None
        if load_checkpoint is not None:
            self._load_checkpoint(load_checkpoint, allow_pickle)

    # ---- weights --------------------------------------------------------------------------------------------
    def _load_backbone(self, weights_path) -> LoadReport:
        """The pretrained transformer from model.safetensors; task heads start fresh (as hub's modules do)."""
        tensors = load_safetensors(weights_path)
        backbone = {k: v for k, v in tensors.items() if k.startswith("electra.")}
        heads = tuple(name + "." for name, _ in self.model.named_children() if name != "electra")
        report = load_state(self.model, backbone, weights_path, allow_new_prefixes=heads)
        report.dropped = sorted(set(tensors) - set(backbone))
        return report

    def _load_checkpoint(self, path, allow_pickle):
        """Every parameter of this module from hub.Trainer's model.pdparams (or a .safetensors of the same names)."""
        self._drop_predictor()
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise WeightsError(f"{path}: load_checkpoint file not found")
        tensors = load_safetensors(path) if path.endswith(".safetensors") else load_pdparams(path, allow_pickle)
        load_state(self, tensors, path, droppable_prefixes=())
        logger.info("loaded fine-tuned parameters from %s", os.path.abspath(path))

    def save_checkpoint(self, path):
        """Write this module's parameters as safetensors (the pickle-free form of hub.Trainer's model.pdparams)."""
        from ..weights import save_safetensors, state_dict_numpy
        save_safetensors(state_dict_numpy(self), path)

    # ---- hub interface --------------------------------------------------------------------------------------
    def get_tokenizer(self, *args, **kwargs):
        """The module's tokenizer: an ElectraTokenizer (Google BERT WordPiece rules, the module's vocab) that hub's
        datasets also accept (HubTokenizer)."""
        return self.tokenizer

    @property
    def input_spec(self):
        """Inputs of forward for hub's save_inference_model / export_onnx_model."""
        n = 4 if self.task == "text-matching" else 2
        return [paddle.static.InputSpec(shape=[None, None], dtype="int64") for _ in range(n)]

    def _mask(self, input_ids):
        return (input_ids != self.tokenizer.pad_token_id).astype("int64")

    def forward(self, input_ids=None, token_type_ids=None, title_input_ids=None, title_token_type_ids=None, *,
                query_input_ids=None, query_token_type_ids=None):
        """The task model's logits: [B, C] (seq-cls, text-matching), [B, L, C] (token-cls), (start, end) [B, L]
        (reading-comprehension) or (pooled [B, H], sequence [B, L, H]) (task None). Padding is pad_token_id.
        text-matching takes (query ids, query types, title ids, title types), or hub's query_*/title_* keywords."""
        if self.task == "text-matching":
            q = query_input_ids if query_input_ids is not None else input_ids
            q_types = query_token_type_ids if query_token_type_ids is not None else token_type_ids
            return self.model(q, q_types, self._mask(q), title_input_ids, title_token_type_ids,
                              self._mask(title_input_ids))
        return self.model(input_ids, token_type_ids, self._mask(input_ids))

    # ---- training (hub.Trainer) -----------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        """One hub.Trainer step: {'loss': scalar tensor, 'metrics': {'acc': float, ...}}.

        Batch layouts (hub's datasets): seq-cls (input_ids, token_type_ids, labels); token-cls (input_ids,
        token_type_ids, seq_lengths, labels with -100 on padding); text-matching (query_input_ids,
        query_token_type_ids, title_input_ids, title_token_type_ids, labels); reading-comprehension (input_ids,
        token_type_ids, start_positions, end_positions)."""
        return self._step(batch)

    def validation_step(self, batch, batch_idx):
        """As training_step (hub.Trainer.evaluate averages 'loss' and 'metrics' over batches)."""
        return self._step(batch)

    def _step(self, batch):
        if self.task is None:
            raise ConfigError("task=None has no training objective: pick seq-cls, token-cls, text-matching or "
                              "reading-comprehension")
        expected = {"seq-cls": 3, "token-cls": 4, "text-matching": 5, "reading-comprehension": 4}[self.task]
        if len(batch) != expected:
            raise DataError(f"task {self.task!r} expects batches of {expected} arrays, got {len(batch)}", field="batch")
        batch = [b if isinstance(b, paddle.Tensor) else paddle.to_tensor(np.asarray(b)) for b in batch]
        if self.task == "reading-comprehension":
            return self._span_step(*batch)
        if self.task == "token-cls":
            return self._token_step(*batch)
        logits = self(*batch[:-1]) if self.task == "seq-cls" else self(*batch[:4])
        labels = batch[-1].reshape([-1]).astype("int64")
        loss = F.cross_entropy(logits, labels)
        acc = float((logits.argmax(axis=-1) == labels).astype("float32").mean())
        return {"loss": loss, "metrics": {"acc": acc}}

    def _token_step(self, input_ids, token_type_ids, seq_lengths, labels):
        logits = self(input_ids, token_type_ids)  # [B, L, C]
        labels = labels.astype("int64")
        loss = F.cross_entropy(logits.reshape([-1, self.num_classes]), labels.reshape([-1]), ignore_index=-100)
        keep = labels != -100
        predicted = logits.argmax(axis=-1)
        correct = ((predicted == labels) & keep).astype("float32").sum()
        metrics = {"acc": float(correct / paddle.clip(keep.astype("float32").sum(), min=1.0))}
        if self._chunk_labels is not None:
            from ..metrics import ChunkF1Scorer
            scorer = ChunkF1Scorer(self._chunk_labels)
            lengths = seq_lengths.reshape([-1]).numpy()
            gold, pred = labels.numpy(), predicted.numpy()
            scorer.update([p[:n] for p, n in zip(pred, lengths)], [g[:n] for g, n in zip(gold, lengths)])
            metrics["f1_score"] = scorer.result()["f1"] / 100.0  # hub reports F1 as a fraction
        return {"loss": loss, "metrics": metrics}

    def _span_step(self, input_ids, token_type_ids, start_positions, end_positions):
        start_logits, end_logits = self(input_ids, token_type_ids)  # [B, L] each
        length = input_ids.shape[1]
        start, end = start_positions.reshape([-1]).astype("int64"), end_positions.reshape([-1]).astype("int64")
        bad = [int(p) for p in np.concatenate([start.numpy(), end.numpy()]) if not 0 <= p < length]
        if bad:
            raise DataError(f"answer position {bad[0]} is outside the sequence of length {length}",
                            field="start_positions/end_positions")
        loss = (F.cross_entropy(start_logits, start) + F.cross_entropy(end_logits, end)) / 2
        exact = (start_logits.argmax(axis=-1) == start) & (end_logits.argmax(axis=-1) == end)
        return {"loss": loss, "metrics": {"acc": float(exact.astype("float32").mean())}}

    # ---- inference ------------------------------------------------------------------------------------------
    def _use_device(self, use_gpu):
        """Place of the inputs; moves the parameters there if needed. The global device changes only for the GPU."""
        if use_gpu:
            if not paddle.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
                raise ElectraError("use_gpu=True, but this Paddle build has no CUDA GPU (install paddlepaddle-gpu "
                                   "and check CUDA_VISIBLE_DEVICES), or pass use_gpu=False")
            # the GPU the user selected (paddle.set_device("gpu:1"), FLAGS_selected_gpus under the launcher);
            # "gpu" alone when the current device is the CPU
            device = paddle.device.get_device()
            if not device.startswith("gpu"):
                paddle.set_device("gpu")
                device = paddle.device.get_device()
            place = paddle.CUDAPlace(int(device.partition(":")[2] or 0))
        else:
            device, place = "cpu", paddle.CPUPlace()
        first = next(iter(self.parameters()), None)
        if first is not None and str(first.place) != str(place):  # "Place(gpu:1)", "Place(cpu)"
            self.to(device=device)
        return place

    def _weights_key(self):
        """A fingerprint of the weights the exported predictor was made from: sums over every parameter of at most
        4,096 values (all biases and LayerNorm parameters, which every training step and every checkpoint moves).
        ~2 ms, against ~30 ms (small) to ~140 ms (base) for summing all weights on each predict() call; train(),
        set_state_dict() and checkpoint loading also drop the predictor outright."""
        with paddle.no_grad():
            flat = paddle.concat([p.flatten() for p in self.model.parameters() if p.size <= 4096])
            position = paddle.arange(flat.shape[0], dtype=flat.dtype)
            return float(flat.sum()), float((flat * flat).sum()), float((flat * position).sum())

    def _drop_predictor(self):
        self._predictor = self._predictor_key = None

    def train(self):
        """Training mode; the exported predictor is dropped (the weights are about to change)."""
        self._drop_predictor()
        return super().train()

    def set_state_dict(self, state_dict, *args, **kwargs):
        self._drop_predictor()
        return super().set_state_dict(state_dict, *args, **kwargs)

    def _fast_runner(self, num_examples):
        """The exported predictor for this call, or None (dygraph): building one needs FAST_MIN_EXAMPLES examples."""
        if not self.fast_inference or (self._predictor is None and num_examples < self.FAST_MIN_EXAMPLES):
            return None
        key = self._weights_key()
        if self._predictor is not None and key == self._predictor_key:
            return self._predictor
        self._drop_predictor()
        if num_examples < self.FAST_MIN_EXAMPLES:
            return None
        try:
            self._predictor = self._export_runner()
        except ConfigError:  # precision= asked for a path this installation lacks
            raise
        except Exception as err:  # a model the static exporter cannot trace still predicts, in dygraph
            logger.warning("predict(): fast path unavailable (%s: %s); using dygraph", type(err).__name__, err)
            self.fast_inference = False
            return None
        self._predictor_key = key
        return self._predictor

    def prepare_fast_path(self):
        """Export now rather than at the first predict() call of FAST_MIN_EXAMPLES examples: servers call this at
        start, since the batches they gather from concurrent requests are often smaller. Returns the runner (None
        where fast_inference is off or the model cannot be exported); later calls of any size reuse it until the
        weights change."""
        return self._fast_runner(self.FAST_MIN_EXAMPLES)

    def _export_runner(self):
        """Export the model and open the runner of self.precision (see PRECISIONS); the path is logged."""
        from ..export import GatedRunner, InferenceRunner, OnnxRunner, export_for_inference, quantize_onnx
        precision = self.precision
        with tempfile.TemporaryDirectory(prefix="electra-hub-export-") as folder:
            # ONNX Runtime when it is installed (the `export` extra): measured 3x faster than the Paddle Inference
            # predictor at batch 1 and ~10% faster at batch 32 (bench/inference.py); every runner holds its weights
            # in memory, so the folder can go
            if precision == "bf16":
                export_for_inference(self.model, folder)
                logger.info("predict(): Paddle Inference predictor, oneDNN bf16 (precision='bf16')")
                return InferenceRunner(folder, precision="bf16")
            try:
                export_for_inference(self.model, folder, onnx=True)
            except ImportError:
                if precision == "int8":
                    raise ConfigError("precision='int8' needs onnxruntime and paddle2onnx (pip install "
                                      "'paddle-electra[export]')") from None
                export_for_inference(self.model, folder)
                logger.info("predict(): Paddle Inference predictor, oneDNN fp32 (onnxruntime not installed)")
                return InferenceRunner(folder)
            if precision == "fp32":
                logger.info("predict(): ONNX Runtime fp32 (precision='fp32')")
                return OnnxRunner(folder)
            try:
                quantize_onnx(folder)
                int8 = OnnxRunner(folder, precision="int8")
            except Exception as err:  # a graph the quantizer cannot handle: "auto" keeps the fp32 export
                if precision == "int8":
                    raise
                logger.warning("predict(): ONNX Runtime fp32 (int8 unavailable: %s: %s)", type(err).__name__, err)
                return OnnxRunner(folder)
            if precision == "int8":
                logger.info("predict(): ONNX Runtime int8 (precision='int8')")
                return int8

            def chosen(choice, agreement, compared, rows):
                logger.info("predict(): ONNX Runtime %s (precision='auto': int8 agreed with fp32 on %.2f%% of %d "
                            "predictions over the first %d rows; needs %g%%)", choice, 100 * agreement, compared,
                            rows, 100 * self.GATE_AGREEMENT)

            return GatedRunner(OnnxRunner(folder), int8, self.GATE_ROWS, self.GATE_AGREEMENT, on_choice=chosen)

    def _run(self, arrays, place):
        """Forward of the task model on numpy int64 inputs, without gradients; outputs as numpy."""
        if self._fast is not None:  # set by predict() on CPU only
            inputs = []
            for ids, types in zip(arrays[0::2], arrays[1::2]):  # text-matching: query, then title
                inputs += [ids, types, (ids != self.tokenizer.pad_token_id).astype(np.int64)]
            out = self._fast(*inputs)
            return list(out) if isinstance(out, tuple) else out
        tensors = [paddle.to_tensor(a, place=place) for a in arrays]
        with paddle.no_grad():
            out = self(*tensors)
        return [o.numpy() for o in out] if isinstance(out, (tuple, list)) else out.numpy()

    def _check_args(self, data, max_seq_len, batch_size):
        if isinstance(data, (str, bytes)) or not isinstance(data, (list, tuple)):
            raise DataError(f"data must be a list of examples, each a list of 1 or 2 texts; got {type(data).__name__}",
                            field="data")
        limit = self.model.config.max_position_embeddings
        if isinstance(max_seq_len, bool) or not isinstance(max_seq_len, int) or not 4 <= max_seq_len <= limit:
            raise ConfigError(f"max_seq_len must be an int in [4, {limit}], got {max_seq_len!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        examples = []
        for i, example in enumerate(data):
            if isinstance(example, str):
                example = [example]
            if not isinstance(example, (list, tuple)) or not 1 <= len(example) <= 2 or \
                    not all(isinstance(t, str) for t in example):
                raise DataError("each example must be a list of 1 or 2 strings", field=f"data[{i}]")
            examples.append(list(example))
        return examples

    def _need_texts(self, examples, count, what):
        for i, example in enumerate(examples):
            if len(example) != count:
                raise DataError(f"task {self.task!r} needs {what}, got {len(example)} text(s)", field=f"data[{i}]")

    def predict(self, data, max_seq_len=128, batch_size=1, use_gpu=False, return_prob=False, *, split_char="\002",
                max_answer_len=30, n_best=20, doc_stride=128, max_query_len=None):
        """Predictions in input order: labels (seq-cls, text-matching), a list of per-token labels (token-cls),
        answer text (reading-comprehension, examples are [context, question]; the windows and decoder of fine-tuning's
        evaluation, paddle_electra/spans.py, whose defaults these are; max_query_len None: 64 as in fine-tuning, or
        half the window when max_seq_len is under 68), or get_embedding's output (task None).
        With return_prob, also the class probabilities (per token for token-cls; the answer's n-best probability
        for reading-comprehension). Texts longer than max_seq_len are truncated (QA: split into doc_stride windows)."""
        examples = self._check_args(data, max_seq_len, batch_size)
        if self.task is None:
            return self.get_embedding(data, use_gpu, max_seq_len=max_seq_len, batch_size=batch_size)
        was_training = self.training
        place = self._use_device(use_gpu)
        self.eval()
        if isinstance(place, paddle.CPUPlace):
            self._fast = self._fast_runner(len(examples))
        try:
            if self.task == "reading-comprehension":
                self._need_texts(examples, 2, "[context, question]")
                results, probs = self._predict_spans(examples, max_seq_len, batch_size, place, max_answer_len,
                                                     n_best, doc_stride, max_query_len)
            elif self.task == "token-cls":
                self._need_texts(examples, 1, "one text")
                results, probs = self._predict_tokens(examples, max_seq_len, batch_size, place, split_char)
            else:
                if self.task == "text-matching":
                    self._need_texts(examples, 2, "[query, title]")
                results, probs = self._predict_classes(examples, max_seq_len, batch_size, place)
        finally:
            self._fast = None
            if was_training:
                paddle.nn.Layer.train(self)  # back to the caller's mode; the weights did not change
        return (results, probs) if return_prob else results

    def _encode(self, text, pair, max_seq_len, offsets=False):
        return self.tokenizer.encode(text, pair, max_seq_len=max_seq_len, truncation="longest_first",
                                     return_offsets=offsets)

    def _predict_classes(self, examples, max_seq_len, batch_size, place):
        pad = self.tokenizer.pad_token_id
        if self.task == "text-matching":
            feats = [(self._encode(q, None, max_seq_len), self._encode(t, None, max_seq_len)) for q, t in examples]
            lengths = [max(len(a["input_ids"]), len(b["input_ids"])) for a, b in feats]
        else:
            feats = [self._encode(ex[0], ex[1] if len(ex) == 2 else None, max_seq_len) for ex in examples]
            lengths = [len(f["input_ids"]) for f in feats]
        probs = [None] * len(examples)
        for idx in length_buckets(lengths, batch_size):
            if self.task == "text-matching":
                arrays = []
                for side in (0, 1):
                    arrays += [pad_rows([feats[i][side]["input_ids"] for i in idx], pad),
                               pad_rows([feats[i][side]["token_type_ids"] for i in idx], 0)]
            else:
                arrays = [pad_rows([feats[i]["input_ids"] for i in idx], pad),
                          pad_rows([feats[i]["token_type_ids"] for i in idx], 0)]
            for i, p in zip(idx, _softmax(self._run(arrays, place).astype(np.float64))):
                probs[i] = p.tolist()
        labels = [self.label_map[int(np.argmax(p))] for p in probs]
        return labels, probs

    def _predict_tokens(self, examples, max_seq_len, batch_size, place, split_char):
        pad = self.tokenizer.pad_token_id
        # hub passes pre-split words joined by split_char; a space splits words the same way for the tokenizer
        feats = [self._encode(ex[0].replace(split_char, " ") if split_char else ex[0], None, max_seq_len, True)
                 for ex in examples]
        labels, probs = [None] * len(examples), [None] * len(examples)
        for idx in length_buckets([len(f["input_ids"]) for f in feats], batch_size):
            logits = self._run([pad_rows([feats[i]["input_ids"] for i in idx], pad),
                                pad_rows([feats[i]["token_type_ids"] for i in idx], 0)], place)
            for row, i in enumerate(idx):
                keep = [j for j, s in enumerate(feats[i]["sequence_ids"]) if s is not None]  # drop [CLS]/[SEP]
                p = _softmax(logits[row, keep].astype(np.float64))
                labels[i] = [self.label_map[int(k)] for k in p.argmax(axis=-1)]
                probs[i] = p.tolist()
        return labels, probs

    def _predict_spans(self, examples, max_seq_len, batch_size, place, max_answer_len, n_best, doc_stride,
                       max_query_len):
        """paddle_electra/spans.py: the windows and decoder of fine-tuning's evaluation, with the same settings."""
        if max_query_len is None:  # fine-tuning's default where it fits; short windows keep room for context
            max_query_len = 64 if max_seq_len >= 68 else max(1, (max_seq_len - 3) // 2)
        for name, value in (("max_answer_len", max_answer_len), ("n_best", n_best), ("doc_stride", doc_stride),
                            ("max_query_len", max_query_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        spans.check_lengths(max_seq_len, max_query_len, "max_seq_len", "max_query_len")
        tok = self.tokenizer
        features = []  # (example index, Window)
        for e, (context, question) in enumerate(examples):
            q_ids = tok.encode(question, truncation=False)["input_ids"][1:-1]
            enc = tok.encode(context, truncation=False, return_offsets=True)
            for window in spans.question_windows(q_ids, enc["input_ids"][1:-1], enc["offsets"][1:-1],
                                                 tok.cls_token_id, tok.sep_token_id, max_seq_len, max_query_len,
                                                 doc_stride):
                features.append((e, window))
        candidates = [[] for _ in examples]  # (log-prob, char start, char end)
        pad = tok.pad_token_id
        for idx in length_buckets([len(w.input_ids) for _, w in features], batch_size):
            start_logits, end_logits = self._run([pad_rows([features[f][1].input_ids for f in idx], pad),
                                                  pad_rows([features[f][1].token_type_ids for f in idx], 0)], place)
            for row, f in enumerate(idx):
                e, w = features[f]
                candidates[e].extend(spans.window_candidates(start_logits[row], end_logits[row], w.first, w.is_best,
                                                             w.offsets, n_best, max_answer_len))
        answers, probs = [], []
        for (context, _), found in zip(examples, candidates):
            ranked = spans.best_answers(found, context, n_best)
            answers.append(ranked[0][0] if ranked else "")
            # the answer's probability among the n-best distinct answers
            probs.append(float(_softmax(np.array([score for _, score in ranked]))[0]) if ranked else 0.0)
        return answers, probs

    def get_embedding(self, data, use_gpu=False, *, max_seq_len=128, batch_size=8):
        """[pooled feature ([CLS] state, H floats), per-token features (L x H, [CLS] and [SEP] included)] per
        example, in input order, from the transformer whatever the task."""
        examples = self._check_args(data, max_seq_len, batch_size)
        was_training = self.training
        place = self._use_device(use_gpu)
        self.eval()
        pad = self.tokenizer.pad_token_id
        feats = [self._encode(ex[0], ex[1] if len(ex) == 2 else None, max_seq_len) for ex in examples]
        results = [None] * len(examples)
        try:
            for idx in length_buckets([len(f["input_ids"]) for f in feats], batch_size):
                ids = pad_rows([feats[i]["input_ids"] for i in idx], pad)
                tensors = [paddle.to_tensor(a, place=place) for a in
                           (ids, pad_rows([feats[i]["token_type_ids"] for i in idx], 0),
                            pad_rows([feats[i]["attention_mask"] for i in idx], 0))]
                with paddle.no_grad():
                    sequence = self.model.electra(*tensors).last_hidden_state.numpy()
                for row, i in enumerate(idx):
                    n = len(feats[i]["input_ids"])
                    results[i] = [sequence[row, 0].tolist(), sequence[row, :n].tolist()]
        finally:
            if was_training:
                paddle.nn.Layer.train(self)  # back to the caller's mode; the weights did not change
        return results

    @serving
    def predict_method(self, data, max_seq_len=128, batch_size=1, use_gpu=False, return_prob=False):
        """hub serving entry (POST /predict/<name> {"data": [[text], ...]}): predict, or embeddings for task None."""
        if self.task is None:
            return self.get_embedding(data, use_gpu, max_seq_len=max_seq_len, batch_size=batch_size)
        if not use_gpu and self._predictor is None:  # a served request is small: export at the first one
            self.prepare_fast_path()
        out = self.predict(data, max_seq_len=max_seq_len, batch_size=batch_size, use_gpu=use_gpu,
                           return_prob=return_prob)
        return [list(x) for x in out] if return_prob else out


__all__ = ["ElectraHubModule", "HubTokenizer", "TASKS", "load_pdparams"]
