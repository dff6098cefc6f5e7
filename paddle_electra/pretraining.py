"""ElectraForPretraining: generator + discriminator with shared embeddings, trained with the ELECTRA objective."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .config import ElectraConfig
from .modeling import ElectraDiscriminator, ElectraGenerator
from . import rtd


@dataclass
class PretrainOutput:
    """Losses are scalars with gradient; the metrics are detached scalars."""

    loss: paddle.Tensor
    gen_loss: paddle.Tensor
    disc_loss: paddle.Tensor
    gen_acc: paddle.Tensor  # argmax accuracy of the generator at the masked slots
    disc_acc: paddle.Tensor  # over real (non-pad) tokens
    disc_precision: paddle.Tensor  # of "replaced" predictions
    disc_recall: paddle.Tensor  # of truly replaced tokens
    disc_logits: paddle.Tensor  # [B, L], for AUC in evaluation
    disc_labels: paddle.Tensor  # [B, L] 0/1
    num_tokens: paddle.Tensor  # real tokens in the batch


def sinusoidal_positions(num_positions: int, width: int, std: float) -> np.ndarray:
    """[num_positions, width] sine/cosine table (Vaswani et al. 2017), scaled to standard deviation `std`."""
    position = np.arange(num_positions, dtype=np.float64)[:, None]
    frequency = np.exp(-np.log(10000.0) * np.arange(0, width, 2, dtype=np.float64) / width)
    table = np.zeros((num_positions, width), dtype=np.float64)
    table[:, 0::2] = np.sin(position * frequency)
    table[:, 1::2] = np.cos(position * frequency[: width // 2])
    return (table * (std / table.std())).astype("float32")


def init_positions_sinusoidal(embeddings: nn.Layer, std: float) -> None:
    """Start the learned absolute position embeddings from a sinusoidal table instead of noise.

    Only the starting point changes (the table stays a trained parameter, the architecture is ELECTRA's). Why: at
    tiny sizes masked-LM and replaced-token training sit on a plateau at the unigram level until attention learns
    to look at neighbouring positions; with random position vectors that takes ~1,000 steps, with sinusoidal ones
    (where a fixed linear map relates position i to i+k) measurably fewer (pretrain/README.md, section 5)."""
    weight = embeddings.position_embeddings.weight
    weight.set_value(sinusoidal_positions(weight.shape[0], weight.shape[1], std))


class ElectraForPretraining(nn.Layer):
    """The generator and discriminator of one ELECTRA model; all of `embeddings` is shared, as in the official models.

    The embedding tables live in the discriminator (`discriminator.electra.embeddings`); the generator holds the same
    layer object, so one parameter receives the gradient of both losses."""

    def __init__(self, discriminator_config: ElectraConfig, generator_config: ElectraConfig,
                 special_ids: Iterable[int], mask_token_id: int, mask_prob: float = 0.15,
                 gen_weight: float = 1.0, disc_weight: float = 50.0, temperature: float = 1.0):
        super().__init__()
        if discriminator_config.embedding_size != generator_config.embedding_size or \
                discriminator_config.vocab_size != generator_config.vocab_size:
            raise ValueError("generator and discriminator must agree on embedding_size and vocab_size "
                             "to share embeddings")
        self.discriminator = ElectraDiscriminator(discriminator_config)
        self.generator = ElectraGenerator(generator_config, embeddings=self.discriminator.electra.embeddings)
        self.special_ids = tuple(sorted(set(special_ids)))
        self.mask_token_id = mask_token_id
        self.mask_prob, self.temperature = mask_prob, temperature
        self.gen_weight, self.disc_weight = gen_weight, disc_weight

    def forward(self, input_ids, token_type_ids, attention_mask,
                masked: Optional[rtd.MaskedBatch] = None, sample_uniforms=None) -> PretrainOutput:
        """input_ids etc. [B, L]. `masked` and `sample_uniforms` [B, N] fix the random draws (tests, exact replays)."""
        if masked is None:
            masked = rtd.mask_tokens(input_ids, attention_mask, self.special_ids, self.mask_token_id, self.mask_prob)
        gen_logits = self.generator(masked.masked_ids, token_type_ids, attention_mask, positions=masked.positions)
        gen_logits = gen_logits.astype("float32")  # [B, N, V]
        weights = masked.weights
        per_slot = F.cross_entropy(gen_logits, masked.targets.unsqueeze(-1), reduction="none").squeeze(-1)  # [B, N]
        gen_loss = (per_slot * weights).sum() / (weights.sum() + 1e-6)

        real = attention_mask.astype("float32")
        if self.disc_weight == 0:
            # masked-LM only (BERT's objective on the generator; pretrain.curve's control at equal compute): the
            # discriminator is not run, so its outputs are zeros and it receives no gradient
            labels = paddle.zeros_like(input_ids)
            disc_logits = paddle.zeros(input_ids.shape, "float32")
            disc_loss = paddle.zeros([], "float32")
        else:
            sampled = rtd.sample_tokens(gen_logits, self.temperature, sample_uniforms)
            fake_ids, labels = rtd.replace_tokens(input_ids, masked, sampled)
            disc_logits = self.discriminator(fake_ids, token_type_ids, attention_mask).astype("float32")  # [B, L]
            per_token = F.binary_cross_entropy_with_logits(disc_logits, labels.astype("float32"), reduction="none")
            disc_loss = (per_token * real).sum() / (real.sum() + 1e-6)
        loss = self.gen_weight * gen_loss + self.disc_weight * disc_loss

        with paddle.no_grad():
            gen_acc = ((gen_logits.argmax(-1) == masked.targets).astype("float32") * weights).sum() / (weights.sum() + 1e-6)
            predicted = (disc_logits > 0).astype("float32")
            truth = labels.astype("float32")
            disc_acc = ((predicted == truth).astype("float32") * real).sum() / (real.sum() + 1e-6)
            true_pos = (predicted * truth * real).sum()
            disc_precision = true_pos / ((predicted * real).sum() + 1e-6)
            disc_recall = true_pos / ((truth * real).sum() + 1e-6)
        return PretrainOutput(loss, gen_loss, disc_loss, gen_acc, disc_acc, disc_precision, disc_recall,
                              disc_logits.detach(), labels, real.sum())
