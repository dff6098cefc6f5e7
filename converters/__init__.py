"""Converters between the official TF / HF checkpoints and paddle_electra weights."""
