"""ElectraConfig: the official json layouts round-trip; unknown or inconsistent fields are refused by name."""
import json

import pytest

from paddle_electra import ConfigError, ElectraConfig, generator_config, preset
from paddle_electra.config import PRESET_SIZES

# the official Chinese small discriminator config file (ymcui/Chinese-ELECTRA config/), field for field
OFFICIAL_SMALL_DISCRIMINATOR = {
    "_num_labels": 2, "architectures": ["ElectraForPreTraining"], "attention_probs_dropout_prob": 0.1,
    "embedding_size": 128, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 256,
    "initializer_range": 0.02, "intermediate_size": 1024, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
    "model_type": "electra", "num_attention_heads": 4, "num_hidden_layers": 12, "output_past": True, "pad_token_id": 0,
    "summary_activation": "gelu", "summary_last_dropout": 0.1, "summary_type": "first", "summary_use_proj": True,
    "type_vocab_size": 2, "vocab_size": 21128}

# HF transformers 4.46 ElectraConfig().to_dict() keys written by save_pretrained
HF_CONFIG = {
    "architectures": ["ElectraForMaskedLM"], "attention_probs_dropout_prob": 0.1, "classifier_dropout": None,
    "embedding_size": 128, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 64,
    "initializer_range": 0.02, "intermediate_size": 256, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
    "model_type": "electra", "num_attention_heads": 1, "num_hidden_layers": 12, "pad_token_id": 0,
    "position_embedding_type": "absolute", "summary_activation": "gelu", "summary_last_dropout": 0.1,
    "summary_type": "first", "summary_use_proj": True, "torch_dtype": "float32", "transformers_version": "4.46.3",
    "type_vocab_size": 2, "use_cache": True, "vocab_size": 21128}


@pytest.mark.parametrize("data", [OFFICIAL_SMALL_DISCRIMINATOR, HF_CONFIG], ids=["official", "hf"])
def test_json_round_trip_is_exact(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    config = ElectraConfig.from_json(path)
    config.to_json(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == data
    assert list(json.loads((tmp_path / "again.json").read_text())) == list(data)  # key order kept too


def test_presets_match_the_official_chinese_configs():
    shapes = {(s, r): (c.embedding_size, c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_hidden_layers)
              for s in PRESET_SIZES for r in ("discriminator", "generator") for c in [preset(s, r)]}
    assert shapes == {
        ("small", "discriminator"): (128, 256, 1024, 4, 12), ("small", "generator"): (128, 64, 256, 1, 12),
        ("small-ex", "discriminator"): (256, 256, 1024, 4, 24), ("small-ex", "generator"): (256, 64, 256, 1, 24),
        ("base", "discriminator"): (768, 768, 3072, 12, 12), ("base", "generator"): (768, 192, 768, 3, 12),
        ("large", "discriminator"): (1024, 1024, 4096, 16, 24), ("large", "generator"): (1024, 256, 1024, 4, 24)}
    for size in PRESET_SIZES:
        d = preset(size)
        assert (d.vocab_size, d.layer_norm_eps, d.hidden_act) == (21128, 1e-12, "gelu")
        # the official 1/4-width rule reproduces every generator preset
        g = generator_config(d)
        assert (g.hidden_size, g.num_attention_heads, g.intermediate_size, g.num_hidden_layers) == \
            (preset(size, "generator").hidden_size, preset(size, "generator").num_attention_heads,
             preset(size, "generator").intermediate_size, preset(size, "generator").num_hidden_layers)


@pytest.mark.parametrize("change,field", [
    ({"foo_bar": 1}, "foo_bar"),
    ({"hidden_size": 250}, "hidden_size"),
    ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ({"hidden_act": "swish"}, "hidden_act"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
    ({"vocab_size": "21128"}, "vocab_size"),
])
def test_bad_fields_are_named(tmp_path, change, field):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**OFFICIAL_SMALL_DISCRIMINATOR, **change}))
    with pytest.raises(ConfigError, match=field) as err:
        ElectraConfig.from_json(path)
    assert str(path) in str(err.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        ElectraConfig.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"vocab_size": 12,')
    with pytest.raises(ConfigError, match="bad.json"):
        ElectraConfig.from_json(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        ElectraConfig.from_json(bad)


def test_env_configure_honours_num_threads_with_and_without_sched_getaffinity(monkeypatch):
    """configure(num_threads=N) sets OMP_NUM_THREADS to N also where os.sched_getaffinity is missing (macOS)."""
    import os
    from paddle_electra import env
    monkeypatch.delenv("PADDLE_ELECTRA_NO_ENV", raising=False)
    for has_affinity in (True, False):
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        if not has_affinity:
            monkeypatch.delattr(os, "sched_getaffinity", raising=False)
        assert env.configure(num_threads=3)["OMP_NUM_THREADS"] == "3"
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert int(env.configure()["OMP_NUM_THREADS"]) >= 1
