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
    """One batch's loss (a mean, with gradient) and the sums and counts behind it: callers that normalise over a
    larger whole (train.py: the global batch of every rank and accumulation step; evaluate.py: a held-out set) add
    these up instead of turning means back into sums."""

    loss: paddle.Tensor  # gen_weight * gen_loss + disc_weight * disc_loss of this batch (with gradient)
    gen_loss_sum: paddle.Tensor  # generator cross-entropy summed over the chosen slots (with gradient)
    disc_loss_sum: paddle.Tensor  # discriminator BCE summed over the real tokens (with gradient)
    gen_slots: paddle.Tensor  # number of chosen slots (the masks' weights summed)
    real_tokens: paddle.Tensor  # number of real (non-pad) tokens
    gen_correct: paddle.Tensor  # [B, N] 1 where the generator's argmax is the original token at a chosen slot
    disc_logits: paddle.Tensor  # [B, L], for AUC in evaluation
    disc_labels: paddle.Tensor  # [B, L] 0/1 (1: replaced)

    @property
    def gen_loss(self):
        return self.gen_loss_sum / (self.gen_slots + 1e-6)

    @property
    def disc_loss(self):
        return self.disc_loss_sum / (self.real_tokens + 1e-6)

    @property
    def gen_acc(self):
        return self.gen_correct.sum() / (self.gen_slots + 1e-6)


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
        gen_loss_sum, gen_slots = (per_slot * weights).sum(), weights.sum()

        real = attention_mask.astype("float32")
        if self.disc_weight == 0:
            # masked-LM only (BERT's objective on the generator; pretrain.demo.curve's control at equal compute): the
            # discriminator is not run, so its outputs are zeros and it receives no gradient
            labels = paddle.zeros_like(input_ids)
            disc_logits = paddle.zeros(input_ids.shape, "float32")
            disc_loss_sum = paddle.zeros([], "float32")
        else:
            sampled = rtd.sample_tokens(gen_logits, self.temperature, sample_uniforms)
            fake_ids, labels = rtd.replace_tokens(input_ids, masked, sampled)
            disc_logits = self.discriminator(fake_ids, token_type_ids, attention_mask).astype("float32")  # [B, L]
            per_token = F.binary_cross_entropy_with_logits(disc_logits, labels.astype("float32"), reduction="none")
            disc_loss_sum = (per_token * real).sum()
        real_tokens = real.sum()
        loss = (self.gen_weight * gen_loss_sum / (gen_slots + 1e-6)
                + self.disc_weight * disc_loss_sum / (real_tokens + 1e-6))
        with paddle.no_grad():
            gen_correct = (gen_logits.argmax(-1) == masked.targets).astype("float32") * weights
        return PretrainOutput(loss, gen_loss_sum, disc_loss_sum, gen_slots, real_tokens, gen_correct,
                              disc_logits.detach(), labels)
