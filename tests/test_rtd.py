"""The RTD objective: masking rules, sampling, labels, and the pretraining loss against an independent torch/HF
computation with the same masked positions and the same sampling uniforms."""
import numpy as np
import paddle
import pytest
from conftest import reference  # a missing reference library: skip here, fail under CI=true

from paddle_electra import ElectraConfig, ElectraForPretraining
from paddle_electra import rtd

PAD, CLS, SEP, MASK = 0, 2, 3, 4
SPECIAL = (CLS, SEP, MASK)


def batch(b=8, l=40, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 60, size=(b, l))
    lengths = rng.integers(3, l + 1, size=b)
    lengths[0] = l
    mask = (np.arange(l)[None, :] < lengths[:, None]).astype(np.int64)
    ids[:, 0] = CLS
    ids[np.arange(b), lengths - 1] = SEP
    ids[mask == 0] = PAD
    return ids, mask


def test_official_number_of_predictions():
    assert rtd.max_predictions(128, 0.15) == 19 and rtd.max_predictions(512, 0.15) == 79


def test_masking_rules():
    paddle.seed(0)
    ids, mask = batch(b=64, l=40)
    out = rtd.mask_tokens(paddle.to_tensor(ids), paddle.to_tensor(mask), SPECIAL, MASK, mask_prob=0.15)
    pos, w, tgt, masked = out.positions.numpy(), out.weights.numpy(), out.targets.numpy(), out.masked_ids.numpy()
    n = rtd.max_predictions(40, 0.15)
    assert pos.shape == (64, n)
    for row in range(64):
        used = pos[row][w[row] == 1]
        assert len(set(used)) == len(used), "positions are drawn without replacement"
        assert all(mask[row, p] == 1 and ids[row, p] not in SPECIAL for p in used)
        real = mask[row].sum()
        expected = max(1, min(n, int(np.round(np.float32(real) * np.float32(0.15)))))
        assert len(used) == min(expected, ((ids[row] > SEP) & (mask[row] == 1)).sum())
        np.testing.assert_array_equal(tgt[row][w[row] == 1], ids[row, used])
        assert (tgt[row][w[row] == 0] == 0).all() and (pos[row][w[row] == 0] == 0).all()
        untouched = np.setdiff1d(np.arange(40), used)
        np.testing.assert_array_equal(masked[row, untouched], ids[row, untouched])
        assert set(masked[row, used]) <= set(ids[row, used]) | {MASK}
    # 85% [MASK] / 15% kept, over many slots
    chosen = masked[np.arange(64)[:, None].repeat(n, 1)[w == 1], pos[w == 1]]
    share = (chosen == MASK).mean()
    assert 0.78 < share < 0.92


def test_mask_rate_is_fifteen_percent_of_real_tokens():
    paddle.seed(1)
    ids = np.full((200, 128), 7)
    ids[:, 0], ids[:, -1] = CLS, SEP
    out = rtd.mask_tokens(paddle.to_tensor(ids), paddle.ones([200, 128], "int64"), SPECIAL, MASK)
    assert out.weights.numpy().sum(1).tolist() == [19] * 200  # round(128 * 0.15) = 19 = N


def test_round_half_to_even_like_tf():
    # 30 real tokens * 0.15 = 4.5 in float32 arithmetic -> 4 (tf.round is half-to-even); 50 * 0.15 = 7.5 -> 8
    for real, expected in [(30, int(np.round(np.float32(30) * np.float32(0.15)))), (50, 8), (10, 2)]:
        ids = np.full((1, 64), 9)
        mask = (np.arange(64) < real).astype(np.int64)[None]
        out = rtd.mask_tokens(paddle.to_tensor(ids), paddle.to_tensor(mask), SPECIAL, MASK, num_predictions=20)
        assert out.weights.numpy().sum() == expected, real


def test_replace_labels_only_changed_tokens():
    ids = paddle.to_tensor([[CLS, 10, 11, 12, SEP]])
    masked = rtd.MaskedBatch(paddle.to_tensor([[CLS, MASK, MASK, 12, SEP]]), paddle.to_tensor([[1, 2, 3, 0]]),
                             paddle.to_tensor([[10, 11, 12, 0]]), paddle.to_tensor([[1.0, 1.0, 1.0, 0.0]]))
    fake, labels = rtd.replace_tokens(ids, masked, paddle.to_tensor([[10, 40, 41, 50]]))
    assert fake.numpy().tolist() == [[CLS, 10, 40, 41, SEP]]  # slot 4 unused: position 0 untouched
    assert labels.numpy().tolist() == [[0, 0, 1, 1, 0]]  # a sample equal to the original is "original"


def _chi_square_p(counts, probs, common):
    """p-value of the counts against the probabilities, cells with expected count < 5 pooled into one."""
    from scipy.stats import chisquare
    observed, expected = counts[common], probs[common]
    if not common.all():
        observed, expected = np.append(observed, counts[~common].sum()), np.append(expected, probs[~common].sum())
    return chisquare(observed, expected / expected.sum() * observed.sum()).pvalue


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampling_follows_the_softmax_chi_square(temperature):
    """The generator's sampler draws exactly softmax(logits / T): a chi-square test of 200,000 samples from a fixed
    table of 50 logits (spread over ~8 nats, so rare ids are drawn too), with the project's hashed uniforms."""
    from pretrain.rng import draw_sample_uniforms
    table = np.random.default_rng(0).normal(0.0, 2.0, size=50).astype(np.float32)
    rows, slots = 2000, 100
    logits = paddle.to_tensor(table).reshape([1, 1, 50]).tile([rows, slots, 1])
    uniforms = draw_sample_uniforms(np.arange(rows), slots, seed=7)
    sampled = rtd.sample_tokens(logits, temperature, uniforms).numpy().ravel()
    scaled = table.astype(np.float64) / temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    common = probs * sampled.size >= 5  # chi-square needs expected counts >= 5: pool the rest into one cell
    assert _chi_square_p(np.bincount(sampled, minlength=50), probs, common) > 1e-4  # fixed draws: deterministic, and a wrong sampler gives ~0
    # the same test rejects a sampler that is off by a little (temperature 10% too high)
    wrong = rtd.sample_tokens(logits, temperature * 1.1, uniforms).numpy().ravel()
    assert _chi_square_p(np.bincount(wrong, minlength=50), probs, common) < 1e-6


def test_sampling_with_paddle_generator_and_edge_probabilities():
    paddle.seed(3)
    logits = paddle.to_tensor(np.log(np.array([[[0.7, 0.2, 0.1, 0.0]]], np.float32) + 1e-30)).tile([1, 20000, 1])
    sampled = rtd.sample_tokens(logits).numpy().ravel()
    np.testing.assert_allclose(np.bincount(sampled, minlength=4) / 20000, [0.7, 0.2, 0.1, 0.0], atol=0.015)
    edges = paddle.to_tensor([[0.0, 0.69, 0.71, 0.99999994]])  # u at the boundaries never leaves the vocabulary
    assert rtd.sample_tokens(logits[:, :4], uniforms=edges).numpy().tolist() == [[0, 0, 1, 2]]


def test_hashed_uniforms_are_uniform_keyed_and_independent():
    from pretrain.rng import draw_sample_uniforms, hashed_uniforms
    u = hashed_uniforms(np.arange(1000), 64)
    assert u.dtype == np.float32 and 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert abs(np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]) < 0.01  # neighbours within a row
    assert abs(np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1]) < 0.01  # neighbouring keys
    # an example's draws depend on its position alone, not on the batch it is in
    whole = draw_sample_uniforms(np.arange(8), 5, seed=1).numpy()
    parts = np.concatenate([draw_sample_uniforms(np.array([3, 4]), 5, seed=1).numpy(),
                            draw_sample_uniforms(np.array([7]), 5, seed=1).numpy()])
    np.testing.assert_array_equal(parts, whole[[3, 4, 7]])
    assert not np.array_equal(draw_sample_uniforms(np.arange(8), 5, seed=2).numpy(), whole)


def test_pretraining_loss_equals_an_independent_torch_computation():
    torch = reference("torch")
    transformers = reference("transformers")
    from converters.mapping import paddle_to_hf

    disc_cfg = ElectraConfig(vocab_size=60, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    gen_cfg = disc_cfg.replace(hidden_size=8, num_attention_heads=1, intermediate_size=32)
    paddle.seed(5)
    model = ElectraForPretraining(disc_cfg, gen_cfg, special_ids=SPECIAL, mask_token_id=MASK)
    ids, mask = batch(b=4, l=24, seed=2)
    types = np.zeros_like(ids)
    t_ids, t_mask, t_types = (paddle.to_tensor(x) for x in (ids, mask, types))
    masked = rtd.mask_tokens(t_ids, t_mask, SPECIAL, MASK)
    uniforms = paddle.rand([4, masked.positions.shape[1]])
    out = model(t_ids, t_types, t_mask, masked=masked, sample_uniforms=uniforms)

    def hf(cls, cfg, paddle_model, head):
        config = transformers.ElectraConfig(vocab_size=60, embedding_size=16, hidden_size=cfg.hidden_size,
                                            num_hidden_layers=2, num_attention_heads=cfg.num_attention_heads,
                                            intermediate_size=cfg.intermediate_size, max_position_embeddings=64,
                                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        m = cls(config).eval()
        state = paddle_to_hf({k: v.numpy() for k, v in paddle_model.state_dict().items()}, cfg, head)
        m.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=False)
        return m

    gen = hf(transformers.ElectraForMaskedLM, gen_cfg, model.generator, "generator")
    disc = hf(transformers.ElectraForPreTraining, disc_cfg, model.discriminator, "discriminator")
    pos, w, tgt = (torch.tensor(x.numpy()) for x in (masked.positions, masked.weights, masked.targets))
    with torch.no_grad():
        logits = gen(torch.tensor(masked.masked_ids.numpy()), attention_mask=torch.tensor(mask),
                     token_type_ids=torch.tensor(types)).logits
        logits = torch.gather(logits, 1, pos[..., None].expand(-1, -1, 60))  # [B, N, V]
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 60), tgt.reshape(-1), reduction="none").view_as(w)
        gen_loss = (ce * w).sum() / (w.sum() + 1e-6)
        # inverse-CDF sampling: the first id whose cumulative probability exceeds u * total
        cdf = torch.softmax(logits, -1).cumsum(-1)
        sampled = (cdf <= torch.tensor(uniforms.numpy())[..., None] * cdf[..., -1:]).sum(-1).clamp(max=59)
        fake = torch.tensor(ids).clone()
        for b in range(4):
            for j in range(pos.shape[1]):
                if w[b, j] == 1:
                    fake[b, pos[b, j]] = sampled[b, j]
        labels = (fake != torch.tensor(ids)).float()
        d_logits = disc(fake, attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types)).logits
        bce = torch.nn.functional.binary_cross_entropy_with_logits(d_logits, labels, reduction="none")
        disc_loss = (bce * torch.tensor(mask)).sum() / (torch.tensor(mask).sum() + 1e-6)
    assert labels.sum() > 0
    np.testing.assert_array_equal(out.disc_labels.numpy(), labels.numpy().astype(np.int64))
    np.testing.assert_allclose(float(out.gen_loss), float(gen_loss), rtol=1e-5)
    np.testing.assert_allclose(float(out.disc_loss), float(disc_loss), rtol=1e-5)
    np.testing.assert_allclose(float(out.loss), float(gen_loss + 50 * disc_loss), rtol=1e-5)
    # the sums and counts behind the means (what train.py and evaluate.py add up over a larger whole)
    np.testing.assert_allclose(float(out.gen_loss_sum), float((ce * w).sum()), rtol=1e-5)
    np.testing.assert_allclose(float(out.disc_loss_sum), float((bce * torch.tensor(mask)).sum()), rtol=1e-5)
    assert float(out.gen_slots) == float(w.sum()) and float(out.real_tokens) == float(mask.sum())
    hits = (logits.argmax(-1) == tgt).float() * w
    np.testing.assert_array_equal(out.gen_correct.numpy(), hits.numpy())


def test_tiny_model_overfits_one_batch():
    from paddle_electra.optim import build_optimizer
    cfg = ElectraConfig(vocab_size=60, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    paddle.seed(7)
    model = ElectraForPretraining(cfg, cfg.replace(hidden_size=16, num_attention_heads=2, intermediate_size=32),
                                  special_ids=SPECIAL, mask_token_id=MASK)
    optimizer = build_optimizer(model, 1e-2)
    ids, mask = batch(b=8, l=24, seed=4)
    args = [paddle.to_tensor(ids), paddle.zeros([8, 24], "int64"), paddle.to_tensor(mask)]
    masked = rtd.mask_tokens(args[0], args[2], SPECIAL, MASK)  # the same positions every step: memorisable
    first = None
    for _ in range(100):
        out = model(*args, masked=masked)
        out.loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        first = first if first is not None else float(out.gen_loss)
    assert float(out.gen_loss) < 0.5 * first
    assert float(out.gen_acc) > 0.5


def test_sinusoidal_position_start():
    """Row i and row i+k of the table are related by one fixed rotation per frequency (what makes neighbours easy to
    attend to), the scale is the model's initializer_range, and the shared embedding layer gets it."""
    from paddle_electra.pretraining import init_positions_sinusoidal, sinusoidal_positions
    table = sinusoidal_positions(64, 16, std=0.1)
    assert table.shape == (64, 16) and table.dtype == np.float32
    assert abs(float(table.std()) - 0.1) < 1e-6
    pairs = table.reshape(64, 8, 2).astype(np.float64)  # (sin, cos) per frequency
    for i, k in ((3, 1), (20, 1), (40, 5)):  # angle(i + k) - angle(i) depends on k only
        step_a = np.angle(pairs[i + k, :, 1] + 1j * pairs[i + k, :, 0]) - np.angle(pairs[i, :, 1] + 1j * pairs[i, :, 0])
        step_b = np.angle(pairs[k, :, 1] + 1j * pairs[k, :, 0]) - np.angle(pairs[0, :, 1] + 1j * pairs[0, :, 0])
        assert np.allclose(np.exp(1j * step_a), np.exp(1j * step_b), atol=1e-6)
    from paddle_electra.config import preset
    disc = preset("tiny", "discriminator").replace(vocab_size=50, max_position_embeddings=32)
    gen = preset("tiny", "generator").replace(vocab_size=50, max_position_embeddings=32)
    model = ElectraForPretraining(disc, gen, special_ids=[0, 1, 2, 3], mask_token_id=4)
    init_positions_sinusoidal(model.discriminator.electra.embeddings, disc.initializer_range)
    expected = sinusoidal_positions(32, disc.embedding_size, disc.initializer_range)
    assert np.array_equal(model.generator.electra.embeddings.position_embeddings.weight.numpy(), expected)


def test_evaluate_runs_the_generator_once_per_batch_and_adds_sums():
    """pretrain/evaluate.py reads the per-slot hits from the model's output (no second generator pass) and its losses
    are the held-out sums over the held-out counts."""
    from pretrain.evaluate import evaluate

    class Data:  # the PretrainingDataset interface evaluate() reads: len() and batch(indices)
        def __init__(self):
            self.ids, self.mask = batch(b=12, l=20, seed=5)

        def __len__(self):
            return len(self.ids)

        def batch(self, indices):
            return {"input_ids": self.ids[indices], "token_type_ids": np.zeros_like(self.ids[indices]),
                    "attention_mask": self.mask[indices]}

    cfg = ElectraConfig(vocab_size=60, embedding_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    paddle.seed(3)
    model = ElectraForPretraining(cfg, cfg, special_ids=SPECIAL, mask_token_id=MASK)
    calls = []
    hook = model.generator.register_forward_post_hook(lambda layer, inputs, output: calls.append(1))
    result = evaluate(model, Data(), unigram_id=10, batch_size=5, num_batches=3)
    hook.remove()
    assert len(calls) == 3  # 12 examples in batches of 5: one generator pass each
    assert result["examples"] == 12 and result["masked_slots"] > 0
    assert 0.0 <= result["gen_accuracy_at_mask"] <= 100.0 and result["gen_loss"] > 0 and result["disc_loss"] > 0
