"""Export a pretraining checkpoint as two model directories: OUT/discriminator and OUT/generator.

Each is what `ElectraDiscriminator.from_pretrained` / `ElectraGenerator.from_pretrained` (and so fine-tuning, the
converters' packager and the HF exporter) read: config.json + model.safetensors + vocab.txt (+ tokenizer_config.json).
The generator directory holds the shared embedding tables too, so each directory stands alone.

    python pretrain/export.py --checkpoint OUTPUT/checkpoints/step-00010000 --out OUTPUT/export
"""
from __future__ import annotations

import json
import os
import sys

import paddle_electra  # noqa: F401  (sets the CPU environment before paddle is imported)
from paddle_electra.errors import ConfigError, command
from paddle_electra.runconfig import ArgumentParser


def export_model(model, tokenizer, out_dir: str) -> dict:
    """Save model.discriminator and model.generator of an ElectraForPretraining under out_dir."""
    paths = {"discriminator": os.path.join(out_dir, "discriminator"), "generator": os.path.join(out_dir, "generator")}
    model.discriminator.save_pretrained(paths["discriminator"], tokenizer=tokenizer)
    model.generator.save_pretrained(paths["generator"], tokenizer=tokenizer)
    return paths


def model_from_checkpoint(checkpoint: str):
    """(ElectraForPretraining with the checkpoint's weights, its tokenizer, trainer_state)."""
    from paddle_electra.config import ElectraConfig
    from paddle_electra.pretraining import ElectraForPretraining
    from paddle_electra.tokenizer import ElectraTokenizer
    from pretrain.checkpoint import STATE_NAME, load_checkpoint, verify_checkpoint

    verify_checkpoint(checkpoint)
    with open(os.path.join(checkpoint, STATE_NAME), encoding="utf-8") as f:
        state = json.load(f)
    tokenizer = ElectraTokenizer.from_pretrained(checkpoint)
    run = state["config"]
    model = ElectraForPretraining(
        ElectraConfig.from_dict(state["discriminator_config"], source=f"{checkpoint}: discriminator_config"),
        ElectraConfig.from_dict(state["generator_config"], source=f"{checkpoint}: generator_config"),
        tokenizer.special_token_ids, tokenizer.mask_token_id, mask_prob=run["mask_prob"],
        gen_weight=run["gen_weight"], disc_weight=run["disc_weight"], temperature=run["temperature"])
    load_checkpoint(checkpoint, model, verify=False)
    model.eval()
    return model, tokenizer, state


def export_checkpoint(checkpoint: str, out_dir: str) -> dict:
    """Verify, load and export one checkpoint; return the two directories."""
    model, tokenizer, _ = model_from_checkpoint(checkpoint)
    return export_model(model, tokenizer, out_dir)


@command
def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint directory (OUTPUT/checkpoints/step-N), or "
                                                            "a run's output directory for its newest checkpoint")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from pretrain.checkpoint import latest_checkpoint
    checkpoint = args.checkpoint
    if not os.path.exists(os.path.join(checkpoint, "manifest.json")):
        found = latest_checkpoint(os.path.join(checkpoint, "checkpoints"))
        if found is None:
            raise ConfigError(f"{checkpoint} is neither a checkpoint nor a run directory with checkpoints")
        checkpoint = found
    paths = export_checkpoint(checkpoint, args.out)
    print(f"exported {checkpoint} -> {paths['discriminator']}, {paths['generator']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
