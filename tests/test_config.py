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


def test_one_typed_layer_reads_json_values_and_flag_text_alike():
    """paddle_electra.runconfig is what PretrainConfig and FinetuneConfig share: the same field type reads the same
    way from a JSON value and from a flag's text, in both configs."""
    from typing import Optional

    from finetune import config as fc
    from paddle_electra.runconfig import coerce, split_flags
    from paddle_electra.runconfig import apply
    from pretrain.config import PretrainConfig, parse_flags

    assert coerce(int, 2.0, "f") == 2 and coerce(int, "1e3", "f", text=True) == 1000
    assert coerce(float, 3, "f") == 3.0 and isinstance(coerce(float, "3", "f", text=True), float)
    assert coerce(bool, "Yes", "f", text=True) is True and coerce(Optional[str], "none", "f", text=True) is None
    assert coerce(dict, '{"hidden_size": 64}', "f", text=True) == {"hidden_size": 64}
    for kind, value, text, words in ((int, "1.5", True, "an integer"), (bool, "maybe", True, "true or false"),
                                     (float, True, False, "a number"), (dict, "[1]", True, "a JSON object"),
                                     (int, "100", False, "an integer")):  # a JSON string is not read as a number
        with pytest.raises(ConfigError, match=f"where must be {words}"):
            coerce(kind, value, "where", text=text)
    assert split_flags(["--a=1", "--b", "-2", "--c"]) == [("a", "1"), ("b", "-2"), ("c", None)]
    # the two configs agree on the same kind of field: an integer from a flag's text, an integral float from JSON
    assert parse_flags(["--max-steps", "20"])[1] == {"max_steps": 20}
    assert fc.resolve(fc_task(), flags=fc.parse_flags(["--num_train_epochs", "2"])).num_train_epochs == 2
    assert apply(PretrainConfig(), {"max_steps": 20.0}, "run.json").max_steps == 20
    assert fc.resolve(fc_task(), {"num_train_epochs": 2.0}).num_train_epochs == 2
    with pytest.raises(ConfigError, match=r"run.json: field 'warmup_steps' must be an integer, got '100'"):
        apply(PretrainConfig(), {"warmup_steps": "100"}, "run.json")  # JSON has types: a string is not read as a number
    with pytest.raises(ConfigError, match=r"unknown flag --learning-rat \(did you mean 'learning_rate'\?\)"):
        parse_flags(["--learning-rat", "1"])
    assert PretrainConfig.load(None, {"max_steps": 5}).max_steps == 5


def test_json_files_are_read_by_one_reader_with_one_line_errors(tmp_path):
    from paddle_electra.fileio import read_json_file
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1,\n  "b": }', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.json: line 3: invalid JSON"):
        read_json_file(bad)
    with pytest.raises(ConfigError, match=r"missing.json: run config not found"):
        read_json_file(tmp_path / "missing.json", "run config")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2,]", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a JSON object, got list"):
        read_json_file(listed, trailing_commas=True)
    assert read_json_file(listed, trailing_commas=True, require_object=False) == [1, 2]
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_json_file(latin)


def fc_task():
    from finetune.tasks import get_task
    return get_task("xnli")


def test_builder_and_server_options_load_defaults_then_json_then_flags(tmp_path):
    """The dataset builder's BuildOptions and the server's ServeOptions go through the same layer as the run configs:
    defaults -> a JSON file -> `--field value` flags (argparse, add_fields), with the same type rules and messages."""
    from paddle_electra.hub.serve import ServeOptions, read_serving_config
    from paddle_electra.runconfig import ArgumentParser, add_fields, apply, field_flags, load
    from pretrain.data import BuildOptions

    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"max_seq_length": 64, "seed": 7, "segment_logic": "original"}), encoding="utf-8")
    parser = ArgumentParser(prog="build")
    add_fields(parser, BuildOptions)
    args = parser.parse_args(["--seed", "9", "--do-lower-case", "false", "--short-seq-prob=0.2"])
    options = load(BuildOptions, str(recipe), field_flags(args))
    assert options == BuildOptions(max_seq_length=64, seed=9, segment_logic="original", do_lower_case=False,
                                   short_seq_prob=0.2)
    assert load(BuildOptions) == BuildOptions()  # no file, no flags: the defaults
    with pytest.raises(ConfigError, match=r"build: unrecognized arguments: --sead"):
        parser.parse_args(["--sead", "1"])  # argparse's own errors are ConfigErrors: one line via errors.command
    with pytest.raises(ConfigError, match=r"command line: field 'seed' must be an integer, got 'x'"):
        load(BuildOptions, None, field_flags(parser.parse_args(["--seed", "x"])))

    config = tmp_path / "serving.json"
    config.write_text(json.dumps({"modules_info": {"m": {}}, "port": 9000, "use_multiprocess": False}),
                      encoding="utf-8")
    modules, values = read_serving_config(str(config))
    assert modules == {"m": {}} and values == {"port": 9000}  # hub serving's other keys are not ours
    options = apply(apply(ServeOptions(), values, "serving.json"), {"max_batch": "8"}, "command line",
                    read_strings=True).validate()
    assert (options.port, options.max_batch, options.host) == (9000, 8, "127.0.0.1")
    with pytest.raises(ConfigError, match=r"--max-pending must be >= 1, got 0"):
        ServeOptions(max_pending=0).validate()

    sub = ArgumentParser(prog="tool").add_subparsers(dest="command", required=True)
    sub.add_parser("go").add_argument("--n", type=int, required=True)
    with pytest.raises(ConfigError, match=r"tool go: the following arguments are required: --n"):
        sub._name_parser_map["go"].parse_args([])
