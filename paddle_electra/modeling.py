"""ELECTRA in Paddle dygraph, top to bottom: embeddings, encoder, backbone, heads, and the models built from them.

Follows the official Chinese ELECTRA (google-research/electra as forked by ymcui/Chinese-ELECTRA):
post-LayerNorm BERT blocks, exact erf GELU, LayerNorm eps 1e-12, no pooler (the "pooled" output is the [CLS] state),
an `embeddings_project` Linear when embedding_size != hidden_size. Every `ElectraFor*` model is `self.electra`
(the backbone) plus one small head, so any head loads any backbone through the fixed `electra.` prefix.

Deliberate differences from the checkpoints' layout, handled by the converters:
- Q, K and V are one fused Linear `qkv` [H, 3H] (one GEMM instead of three; measurably faster on CPU and GPU).
- Paddle Linear weights are [in, out], the TF kernel layout; HF/torch stores [out, in].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .config import ElectraConfig
from .env import apply_paddle_flags

apply_paddle_flags()  # contiguous kernels on CPU (env.py), also when Paddle was imported before paddle_electra


def activation(name: str):
    if name == "gelu":
        return lambda x: F.gelu(x, approximate=False)
    if name == "gelu_new":
        return lambda x: F.gelu(x, approximate=True)
    if name == "relu":
        return F.relu
    raise ValueError(f"unsupported activation {name!r}")


class _LinearWithMatmulBiasGrad(paddle.autograd.PyLayer):
    """x @ W + b whose backward takes the bias gradient as a matrix product, ones(1, rows) @ dy. Paddle's CPU
    backward of the broadcast add reduces dy with a generic kernel: 30 ms for a 4,096 x 1,024 gradient on the
    development machine against 0.3 ms as a matmul, and the AddGrad nodes were 21% of the fine-tuning step
    (bench/results/profile_finetune-small.md). The forward is F.linear itself (the same numbers); the gradients
    differ from the plain op's only in float summation order."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensor()
        rows = dy.reshape([-1, dy.shape[-1]])
        dx = paddle.matmul(dy, weight, transpose_y=True)
        dw = paddle.matmul(x.reshape([-1, x.shape[-1]]), rows, transpose_x=True)
        db = paddle.matmul(paddle.ones([1, rows.shape[0]], dtype=rows.dtype), rows).reshape([-1])
        return dx, dw, db


class Linear(nn.Linear):
    """nn.Linear (the same parameters and state-dict names) with the CPU training backward above; on GPU, under
    to_static (export), or when no gradient is needed it is the plain op."""

    def forward(self, x):
        if (paddle.in_dynamic_mode() and paddle.is_grad_enabled() and not on_gpu(x) and self.bias is not None
                and not (x.stop_gradient or self.weight.stop_gradient or self.bias.stop_gradient)):
            return _LinearWithMatmulBiasGrad.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


def linear(in_features: int, out_features: int, std: Optional[float]) -> Linear:
    """Linear with truncated-normal(std) weights (the official encoder init); std=None keeps Paddle's Xavier default,
    which is the TF glorot-uniform default the official code uses for its output layers."""
    weight_attr = None
    if std is not None:
        weight_attr = paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(mean=0.0, std=std, a=-2 * std, b=2 * std))
    return Linear(in_features, out_features, weight_attr=weight_attr,
                  bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)))


def on_gpu(x) -> bool:
    """Whether x lives on a GPU; under to_static (export) the tensor has no place, so ask the current device."""
    if paddle.in_dynamic_mode():
        return x.place.is_gpu_place()
    return paddle.device.get_device().startswith("gpu")


def use_fused_attention(x) -> bool:
    """Whether attention runs F.scaled_dot_product_attention (the GPU's flash / memory-efficient kernels)."""
    return on_gpu(x)


def fused_attention_mask(additive_mask, query_length: int, dtype):
    """The [B, 1, 1, L] key mask as the [B, 1, Lq, L] tensor Paddle's fused kernels read (Paddle 3.3.1): the flash
    kernel takes a 4-D mask unchecked and steps its rows by the key length, so a query dimension of 1 makes query
    row i read another example's mask (or past the buffer); the memory-efficient kernel rejects it ("The 2nd last
    dim of attn_bias should be equal to the sequence length of query"). `tile` copies, so the kernel gets dense
    memory whatever FLAGS_use_stride_kernel says (an `expand` view has stride 0)."""
    return paddle.tile(additive_mask.astype(dtype), [1, 1, query_length, 1])


def layer_norm(size: int, eps: float) -> nn.LayerNorm:
    return nn.LayerNorm(size, epsilon=eps)


# ---- outputs: one small dataclass each, same type and rank whatever the flags ------------------------------------
@dataclass
class ElectraModelOutput:
    last_hidden_state: paddle.Tensor  # [B, L, H]
    hidden_states: Optional[Tuple[paddle.Tensor, ...]] = None  # (embeddings, layer_1, ..., layer_n), each [B, L, H]
    attentions: Optional[Tuple[paddle.Tensor, ...]] = None  # each [B, heads, L, L]


# ---- backbone ---------------------------------------------------------------------------------------------------
class ElectraEmbeddings(nn.Layer):
    """word + position + token-type embeddings (all of width embedding_size), LayerNorm, dropout."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        std = config.initializer_range
        init = paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(mean=0.0, std=std, a=-2 * std, b=2 * std))
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size, weight_attr=init)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.embedding_size, weight_attr=init)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.embedding_size, weight_attr=init)
        self.layer_norm = layer_norm(config.embedding_size, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        seq_len = input_ids.shape[1]
        positions = self.position_embeddings.weight[:seq_len]  # [L, E], broadcast over the batch
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids) + positions
        return self.dropout(self.layer_norm(x))


class ElectraSelfAttention(nn.Layer):
    """Multi-head self-attention with the BERT post-LN output block (dense, dropout, residual, LayerNorm)."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        self.qkv = linear(h, 3 * h, config.initializer_range)
        self.output = linear(h, h, config.initializer_range)
        self.layer_norm = layer_norm(h, config.layer_norm_eps)
        self.attention_dropout = config.attention_probs_dropout_prob
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x, additive_mask, return_probs=False):
        b, l, h = x.shape
        qkv = self.qkv(x).reshape([b, l, 3, self.num_heads, self.head_size])
        probs = None
        if use_fused_attention(x) and not return_probs:
            # fused kernel on GPU (flash / memory-efficient attention); layout [B, L, heads, head_size]
            q, k, v = qkv.unbind(axis=2)
            mask = None if additive_mask is None else fused_attention_mask(additive_mask, l, q.dtype)
            context = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.attention_dropout if self.training else 0.0,
                training=self.training)
            context = context.reshape([b, l, h])
        else:
            q, k, v = qkv.transpose([2, 0, 3, 1, 4]).unbind(axis=0)  # each [B, heads, L, head_size]
            scores = paddle.matmul(q, k, transpose_y=True) * (1.0 / math.sqrt(self.head_size))
            if additive_mask is not None:
                scores = scores + additive_mask
            probs = F.softmax(scores, axis=-1)  # [B, heads, L, L]
            attended = F.dropout(probs, self.attention_dropout, training=self.training)
            context = paddle.matmul(attended, v).transpose([0, 2, 1, 3]).reshape([b, l, h])
        out = self.layer_norm(x + self.dropout(self.output(context)))
        return out, probs


class ElectraLayer(nn.Layer):
    """One post-LN transformer block: attention, then FFN (dense, GELU, dense, dropout, residual, LayerNorm)."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.attention = ElectraSelfAttention(config)
        self.intermediate = linear(config.hidden_size, config.intermediate_size, config.initializer_range)
        self.output = linear(config.intermediate_size, config.hidden_size, config.initializer_range)
        self.layer_norm = layer_norm(config.hidden_size, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.act = activation(config.hidden_act)

    def forward(self, x, additive_mask, return_probs=False):
        x, probs = self.attention(x, additive_mask, return_probs)
        x = self.layer_norm(x + self.dropout(self.output(self.act(self.intermediate(x)))))
        return x, probs


class ElectraModel(nn.Layer):
    """The ELECTRA transformer: embeddings, optional embeddings_project, encoder. No pooler (as the official model)."""

    def __init__(self, config: ElectraConfig, embeddings: Optional[ElectraEmbeddings] = None):
        super().__init__()
        self.config = config
        # a generator passes the discriminator's embeddings in: the official models share all of electra/embeddings
        self.embeddings = embeddings if embeddings is not None else ElectraEmbeddings(config)
        if config.embedding_size != config.hidden_size:
            # the official code leaves this at the TF glorot-uniform default (no initializer passed)
            self.embeddings_project = linear(config.embedding_size, config.hidden_size, None)
        else:
            self.embeddings_project = None
        self.encoder = nn.LayerList([ElectraLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_hidden_states=False, output_attentions=False) -> ElectraModelOutput:
        """input_ids, token_type_ids, attention_mask: [B, L] integers (mask 1 = real token, 0 = padding)."""
        if paddle.in_dynamic_mode() and input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds max_position_embeddings "
                             f"{self.config.max_position_embeddings}")
        if token_type_ids is None:
            token_type_ids = paddle.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)
        additive_mask = None
        if attention_mask is not None:
            # (1 - mask) * -10000 over keys, as the official code: [B, 1, 1, L] broadcasts over heads and queries
            additive_mask = ((1.0 - attention_mask.astype(x.dtype)) * -10000.0).unsqueeze([1, 2])
        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for layer in self.encoder:
            x, probs = layer(x, additive_mask, return_probs=output_attentions)
            if output_hidden_states:
                hidden_states.append(x)
            if output_attentions:
                attentions.append(probs)
        return ElectraModelOutput(x, tuple(hidden_states) if hidden_states else None,
                                  tuple(attentions) if attentions else None)


POOLINGS = ("cls", "mean")  # what SequenceClassificationHead classifies: the [CLS] state or the mean state


# ---- heads ------------------------------------------------------------------------------------------------------
class DiscriminatorHead(nn.Layer):
    """Replaced-token detection: dense(H->H, act), dense(H->1): one logit per token."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.dense = linear(config.hidden_size, config.hidden_size, config.initializer_range)
        self.dense_prediction = linear(config.hidden_size, 1, None)
        self.act = activation(config.hidden_act)

    def forward(self, sequence_output):
        return self.dense_prediction(self.act(self.dense(sequence_output))).squeeze(-1)  # [B, L]


class GeneratorHead(nn.Layer):
    """Masked LM: dense(h->E), GELU, LayerNorm, then the tied word-embedding projection plus output_bias."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.dense = linear(config.hidden_size, config.embedding_size, config.initializer_range)
        self.layer_norm = layer_norm(config.embedding_size, config.layer_norm_eps)
        self.output_bias = self.create_parameter([config.vocab_size], is_bias=True,
                                                 default_initializer=nn.initializer.Constant(0.0))
        self.act = activation("gelu")  # the official head uses gelu whatever hidden_act says

    def forward(self, hidden, word_embeddings):
        """hidden [..., h], word_embeddings [V, E] -> logits [..., V]."""
        x = self.layer_norm(self.act(self.dense(hidden)))
        # (x, 1) . (w, b): the bias rides in the matmul as one more column. A separate broadcast add over the
        # [..., V] logits and its gradient (a sum over every slot) cost Paddle's CPU kernels half as much again as
        # the matmul itself (bench/profile_step.py); the same numbers up to float rounding
        table = paddle.concat([word_embeddings, self.output_bias.unsqueeze(-1).astype(word_embeddings.dtype)], axis=-1)
        x = paddle.concat([x, paddle.ones_like(x[..., :1])], axis=-1)
        return paddle.matmul(x, table.astype(x.dtype), transpose_y=True)


class SequenceClassificationHead(nn.Layer):
    """The official fine-tuning head: the [CLS] state, dropout, one dense layer (HF's extra dense+GELU is not used).

    pooling="mean" averages the states of the real tokens instead of taking [CLS]. Why it exists: a pretrained
    discriminator is trained per token and never on [CLS] alone, so with little fine-tuning (small models, few
    labels, few epochs) the mean of the token states transfers better; measured in pretrain/README.md, section 6."""

    def __init__(self, config: ElectraConfig, num_labels: int, dropout: float = 0.1, pooling: str = "cls"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = linear(config.hidden_size, num_labels, None)

    def forward(self, sequence_output, attention_mask=None):
        if self.pooling == "mean" and attention_mask is not None:
            pooled = mean_pool(sequence_output, attention_mask)
        elif self.pooling == "mean":
            pooled = sequence_output.mean(axis=1)
        else:
            pooled = sequence_output[:, 0]
        return self.classifier(self.dropout(pooled))  # [B, num_labels]


class TokenClassificationHead(nn.Layer):
    """Per-token dropout + dense."""

    def __init__(self, config: ElectraConfig, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = linear(config.hidden_size, num_labels, config.initializer_range)

    def forward(self, sequence_output):
        return self.classifier(self.dropout(sequence_output))  # [B, L, num_labels]


class SpanHead(nn.Layer):
    """Span extraction: one dense to (start, end) logits per token, BERT/SQuAD style.

    The official code conditions the end logits on the start (joint_prediction) and adds an answerable classifier;
    we use independent start/end logits, as HF and PaddleNLP do, which decodes with the same n-best search."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.qa_outputs = linear(config.hidden_size, 2, config.initializer_range)

    def forward(self, sequence_output):
        start, end = self.qa_outputs(sequence_output).unbind(axis=-1)
        return start, end  # each [B, L]


class TextMatchingHead(nn.Layer):
    """PaddleHub's text-matching head: mean-pooled query u and title v, then dense over [u, v, |u - v|]."""

    def __init__(self, config: ElectraConfig, num_labels: int = 2, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = linear(3 * config.hidden_size, num_labels, None)

    def forward(self, query_output, query_mask, title_output, title_mask):
        u, v = mean_pool(query_output, query_mask), mean_pool(title_output, title_mask)
        return self.classifier(self.dropout(paddle.concat([u, v, paddle.abs(u - v)], axis=-1)))


def mean_pool(sequence_output, attention_mask):
    """Average of the hidden states of real tokens: [B, L, H], [B, L] -> [B, H]."""
    mask = attention_mask.astype(sequence_output.dtype).unsqueeze(-1)
    return (sequence_output * mask).sum(axis=1) / paddle.clip(mask.sum(axis=1), min=1.0)


# ---- models: backbone + one head ---------------------------------------------------------------------------------
class ElectraPreTrainedModel(nn.Layer):
    """Base of every model with a backbone at `self.electra`; gives save_pretrained / from_pretrained."""

    architecture = None  # the HF class name written to config.json, so the HF exporter knows what this is

    def save_pretrained(self, directory, tokenizer=None):
        from .weights import save_pretrained
        save_pretrained(self, directory, tokenizer=tokenizer)

    @classmethod
    def from_pretrained(cls, directory, **head_kwargs):
        from .weights import from_pretrained
        return from_pretrained(cls, directory, **head_kwargs)


class ElectraDiscriminator(ElectraPreTrainedModel):
    """ELECTRA discriminator (HF ElectraForPreTraining): per-token logit that the token was replaced."""

    architecture = "ElectraForPreTraining"

    def __init__(self, config: ElectraConfig, embeddings: Optional[ElectraEmbeddings] = None):
        super().__init__()
        self.config = config
        self.electra = ElectraModel(config, embeddings)
        self.discriminator_predictions = DiscriminatorHead(config)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        return self.discriminator_predictions(self.electra(input_ids, token_type_ids, attention_mask).last_hidden_state)


class ElectraGenerator(ElectraPreTrainedModel):
    """ELECTRA generator (HF ElectraForMaskedLM): vocabulary logits, at every position or only at `positions`."""

    architecture = "ElectraForMaskedLM"

    def __init__(self, config: ElectraConfig, embeddings: Optional[ElectraEmbeddings] = None):
        super().__init__()
        self.config = config
        self.electra = ElectraModel(config, embeddings)
        self.generator_predictions = GeneratorHead(config)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, positions=None):
        """positions [B, N] (optional): gather these before the head, as the official code does (15% of the cost)."""
        hidden = self.electra(input_ids, token_type_ids, attention_mask).last_hidden_state
        if positions is not None:
            hidden = paddle.take_along_axis(hidden, positions.unsqueeze(-1).astype("int64"), axis=1,
                                            broadcast=True)  # [B, N, h]
        return self.generator_predictions(hidden, self.electra.embeddings.word_embeddings.weight)  # [B, L or N, V]


class ElectraForSequenceClassification(ElectraPreTrainedModel):
    """Single-text or text-pair classification on [CLS] (or the mean of the token states: pooling="mean")."""

    def __init__(self, config: ElectraConfig, num_labels: int = 2, dropout: float = 0.1, pooling: str = "cls"):
        super().__init__()
        self.config, self.num_labels, self.pooling = config, num_labels, pooling
        self.electra = ElectraModel(config)
        self.classifier = SequenceClassificationHead(config, num_labels, dropout, pooling)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        hidden = self.electra(input_ids, token_type_ids, attention_mask).last_hidden_state
        return self.classifier(hidden, attention_mask)


class ElectraForTokenClassification(ElectraPreTrainedModel):
    """Per-token labels (tagging, segmentation, NER)."""

    def __init__(self, config: ElectraConfig, num_labels: int = 2, dropout: float = 0.1):
        super().__init__()
        self.config, self.num_labels = config, num_labels
        self.electra = ElectraModel(config)
        self.classifier = TokenClassificationHead(config, num_labels, dropout)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        return self.classifier(self.electra(input_ids, token_type_ids, attention_mask).last_hidden_state)


class ElectraForQuestionAnswering(ElectraPreTrainedModel):
    """Span extraction (CMRC 2018, DRCD): start and end logits per token."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.config = config
        self.electra = ElectraModel(config)
        self.span = SpanHead(config)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        return self.span(self.electra(input_ids, token_type_ids, attention_mask).last_hidden_state)


class ElectraForTextMatching(ElectraPreTrainedModel):
    """Siamese text matching (PaddleHub's text-matching task): query and title encoded separately."""

    def __init__(self, config: ElectraConfig, num_labels: int = 2, dropout: float = 0.1):
        super().__init__()
        self.config, self.num_labels = config, num_labels
        self.electra = ElectraModel(config)
        self.matcher = TextMatchingHead(config, num_labels, dropout)

    def forward(self, query_ids, query_type_ids, query_mask, title_ids, title_type_ids, title_mask):
        query = self.electra(query_ids, query_type_ids, query_mask).last_hidden_state
        title = self.electra(title_ids, title_type_ids, title_mask).last_hidden_state
        return self.matcher(query, query_mask, title, title_mask)


class ElectraEncoder(ElectraPreTrainedModel):
    """Backbone only, for features: pooled ([CLS] state, as ELECTRA has no pooler) and per-token outputs."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.config = config
        self.electra = ElectraModel(config)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        sequence = self.electra(input_ids, token_type_ids, attention_mask).last_hidden_state
        return sequence[:, 0], sequence  # [B, H], [B, L, H]
