"""Write the tiny TF-saved ELECTRA checkpoint under tests/fixtures/tf_electra_tiny (needs TensorFlow; run once).

The checkpoint uses the official Chinese ELECTRA variable names (electra-reference.md §4.2) with tiny shapes,
a few Adam slots and `global_step`, saved by TF's own v1 `Saver` so the bytes are what TF writes. `expected.npz`
holds every tensor as `tf.train.load_checkpoint` reads it back, so tests of our reader need no TensorFlow.
A second checkpoint in `extra_dtypes/` covers the dtypes ELECTRA does not use (float16, bfloat16, string, ...).

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu
    cd <repo> && /tmp/tfenv/bin/python converters/tools/make_tf_fixture.py
"""
import argparse
import json
import os
import tempfile

import numpy as np

DISCRIMINATOR = dict(embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64)
GENERATOR = dict(embedding_size=16, hidden_size=8, num_hidden_layers=2, num_attention_heads=1, intermediate_size=32)
COMMON = dict(attention_probs_dropout_prob=0.1, hidden_act="gelu", hidden_dropout_prob=0.1, initializer_range=0.02,
              layer_norm_eps=1e-12, max_position_embeddings=64, model_type="electra", pad_token_id=0,
              summary_activation="gelu", summary_last_dropout=0.1, summary_type="first", summary_use_proj=True,
              type_vocab_size=2, vocab_size=99)
# The real small configs carry these HF leftovers too (electra-reference.md §1.7); keep them so loaders meet them.
DISCRIMINATOR_EXTRAS = dict(_num_labels=2, architectures=["ElectraForPreTraining"], output_past=True)
GENERATOR_EXTRAS = dict(directionality="bidi")

SPECIAL = ["[PAD]", "[unused1]", "[unused2]", "[unused3]", "[unused4]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CJK = ("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后"
       "小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行今气很错酒店")  # 86 common characters
SLOTTED = ["electra/embeddings/LayerNorm/gamma", "electra/encoder/layer_0/attention/self/query/bias",
           "generator_predictions/output_bias"]  # variables that also get adam_m / adam_v slots


def vocab_tokens():
    tokens = SPECIAL + list("，。！？") + list(CJK)
    assert len(tokens) == COMMON["vocab_size"] and len(set(tokens)) == len(tokens), len(tokens)
    return tokens


def encoder_shapes(scope, hidden, intermediate, layers):
    shapes = {}
    for k in range(layers):
        layer = f"{scope}/encoder/layer_{k}"
        for part in ("query", "key", "value"):
            shapes[f"{layer}/attention/self/{part}/kernel"] = (hidden, hidden)
            shapes[f"{layer}/attention/self/{part}/bias"] = (hidden,)
        shapes[f"{layer}/attention/output/dense/kernel"] = (hidden, hidden)
        shapes[f"{layer}/attention/output/dense/bias"] = (hidden,)
        shapes[f"{layer}/attention/output/LayerNorm/gamma"] = (hidden,)
        shapes[f"{layer}/attention/output/LayerNorm/beta"] = (hidden,)
        shapes[f"{layer}/intermediate/dense/kernel"] = (hidden, intermediate)
        shapes[f"{layer}/intermediate/dense/bias"] = (intermediate,)
        shapes[f"{layer}/output/dense/kernel"] = (intermediate, hidden)
        shapes[f"{layer}/output/dense/bias"] = (hidden,)
        shapes[f"{layer}/output/LayerNorm/gamma"] = (hidden,)
        shapes[f"{layer}/output/LayerNorm/beta"] = (hidden,)
    return shapes


def electra_shapes():
    """Variable name -> shape of a pretraining checkpoint (shared embeddings, discriminator, generator)."""
    e, v, d, g = DISCRIMINATOR["embedding_size"], COMMON["vocab_size"], DISCRIMINATOR, GENERATOR
    shapes = {
        "electra/embeddings/word_embeddings": (v, e),
        "electra/embeddings/position_embeddings": (COMMON["max_position_embeddings"], e),
        "electra/embeddings/token_type_embeddings": (COMMON["type_vocab_size"], e),
        "electra/embeddings/LayerNorm/gamma": (e,),
        "electra/embeddings/LayerNorm/beta": (e,),
        "electra/embeddings_project/kernel": (e, d["hidden_size"]),
        "electra/embeddings_project/bias": (d["hidden_size"],),
    }
    shapes.update(encoder_shapes("electra", d["hidden_size"], d["intermediate_size"], d["num_hidden_layers"]))
    shapes.update({
        "discriminator_predictions/dense/kernel": (d["hidden_size"], d["hidden_size"]),
        "discriminator_predictions/dense/bias": (d["hidden_size"],),
        "discriminator_predictions/dense_1/kernel": (d["hidden_size"], 1),
        "discriminator_predictions/dense_1/bias": (1,),
        "generator/embeddings_project/kernel": (e, g["hidden_size"]),
        "generator/embeddings_project/bias": (g["hidden_size"],),
    })
    shapes.update(encoder_shapes("generator", g["hidden_size"], g["intermediate_size"], g["num_hidden_layers"]))
    shapes.update({
        "generator_predictions/dense/kernel": (g["hidden_size"], e),
        "generator_predictions/dense/bias": (e,),
        "generator_predictions/LayerNorm/gamma": (e,),
        "generator_predictions/LayerNorm/beta": (e,),
        "generator_predictions/output_bias": (v,),
    })
    return shapes


def electra_values(seed=0):
    rng = np.random.RandomState(seed)
    values = {}
    for name, shape in electra_shapes().items():
        noise = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        # LayerNorm gammas near 1 as after training; every other tensor small and non-zero so mix-ups show.
        values[name] = (1 + noise) if name.endswith("/gamma") else noise
    for name in SLOTTED:
        values[f"{name}/adam_m"] = (rng.standard_normal(values[name].shape) * 1e-3).astype(np.float32)
        values[f"{name}/adam_v"] = (np.abs(rng.standard_normal(values[name].shape)) * 1e-6).astype(np.float32)
    values["global_step"] = np.array(12345, dtype=np.int64)
    return values


def extra_dtype_values(seed=1):
    rng = np.random.RandomState(seed)
    return {
        "float16": rng.standard_normal((3, 5)).astype(np.float16),
        "bfloat16": rng.standard_normal((4, 3)).astype(np.float32),  # cast to bfloat16 inside TF
        "float64": rng.standard_normal((2, 2, 2)),
        "int32": rng.randint(-2**31, 2**31 - 1, size=(7,), dtype=np.int64).astype(np.int32),
        "int64": np.array([-(2**62), -1, 0, 2**62 + 12345], dtype=np.int64),
        "bool": rng.rand(2, 3) > 0.5,
        "uint8": rng.randint(0, 256, size=(5,)).astype(np.uint8),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        # Long strings get multi-byte varint lengths; non-ASCII checks bytes pass through untouched.
        "string": np.array([[b"", b"electra"], ["\u4eca\u5929\u5929\u6c14".encode("utf-8"), b"x" * 300]],
                           dtype=object),
    }


def save_with_tf(tf, values, prefix, bfloat16_names=()):
    """Save `values` under exactly their dict keys with the v1 Saver; return what TF reads back."""
    graph = tf.Graph()
    with graph.as_default():
        variables, feeds = {}, {}
        for name, value in values.items():
            dtype = tf.bfloat16 if name in bfloat16_names else tf.as_dtype(np.asarray(value).dtype)
            if dtype == tf.string:
                value = np.asarray(value).astype(object)
            # Placeholders keep the values out of the .meta graph (a constant initializer would store them twice).
            feeds[name] = tf.compat.v1.placeholder(dtype, shape=np.shape(value))
            variables[name] = tf.compat.v1.Variable(feeds[name], name=name)
        saver = tf.compat.v1.train.Saver(var_list=variables, save_relative_paths=True)  # dict keys = names
        with tf.compat.v1.Session(graph=graph) as sess:
            feed = {feeds[n]: (np.asarray(v).astype(tf.bfloat16.as_numpy_dtype) if n in bfloat16_names else v)
                    for n, v in values.items()}
            sess.run(tf.compat.v1.global_variables_initializer(), feed_dict=feed)
            # No .meta: it would be ~140 KB of graph that no reader here needs (the fixture must stay small).
            saver.save(sess, prefix, write_meta_graph=False)
    reader = tf.train.load_checkpoint(prefix)
    readback = {}
    for name, dtype in reader.get_variable_to_dtype_map().items():
        tensor = reader.get_tensor(name)
        if dtype == tf.bfloat16:  # npz cannot hold bfloat16; widening to float32 is exact
            tensor = tensor.astype(np.float32)
        elif dtype == tf.string:  # fixed-width bytes instead of a pickled object array
            tensor = np.asarray(tensor).astype(np.bytes_)
        readback[name] = tensor
    assert sorted(readback) == sorted(values), set(readback) ^ set(values)
    return readback


def write_config(path, model, extras):
    obj = dict(COMMON, **model, **extras)
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(dict(sorted(obj.items())), indent=2) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/fixtures/tf_electra_tiny")
    args = parser.parse_args()
    tokens = vocab_tokens()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.disable_resource_variables()  # TF 1.15's ref variables, as the official checkpoints were written
    out_parent = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_parent, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_parent) as tmp:  # same filesystem, so os.replace works
        os.makedirs(os.path.join(tmp, "extra_dtypes"))
        expected = save_with_tf(tf, electra_values(), os.path.join(tmp, "electra_small"))
        np.savez(os.path.join(tmp, "expected.npz"), **expected)
        extra = save_with_tf(tf, extra_dtype_values(), os.path.join(tmp, "extra_dtypes", "dtypes"),
                                bfloat16_names=("bfloat16",))
        np.savez(os.path.join(tmp, "extra_dtypes", "expected.npz"), **extra)
        write_config(os.path.join(tmp, "discriminator.json"), DISCRIMINATOR, DISCRIMINATOR_EXTRAS)
        write_config(os.path.join(tmp, "generator.json"), GENERATOR, GENERATOR_EXTRAS)
        with open(os.path.join(tmp, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in tokens))
        # Move each finished file into place; a failed run above leaves the old fixture untouched.
        for folder, _, files in os.walk(tmp):
            dest = os.path.join(args.out, os.path.relpath(folder, tmp))
            os.makedirs(dest, exist_ok=True)
            for name in files:
                os.replace(os.path.join(folder, name), os.path.join(dest, name))
    print(f"wrote {args.out} with TensorFlow {tf.__version__}")


if __name__ == "__main__":
    main()
