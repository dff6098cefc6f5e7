"""Pretraining checkpoints: complete or absent, verified by checksum, resumable exactly.

Layout of OUTPUT/checkpoints/step-00001000/:
    model.safetensors       every parameter of ElectraForPretraining once (shared embeddings under discriminator.*)
    optimizer.safetensors   AdamW moments and beta powers, keyed "<parameter name>/<accumulator>"; Paddle's
                            internal parameter names (linear_12.w_0) are translated so a new process can load them
    trainer_state.json      step, data position, LR-scheduler state, RNG states, grad-scaler state, both model
                            configs, the run config, the dataset fingerprint
    vocab.txt, tokenizer_config.json
    manifest.json           sha256 and size of every file above (written last)

A checkpoint is written into a hidden temp directory beside its final name and renamed into place, so a crash
(SIGKILL included) leaves either the complete previous set or the complete new one. No pickle anywhere.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from typing import Optional

import numpy as np

from paddle_electra.errors import WeightsError
from paddle_electra.fileio import MANIFEST_NAME, atomic_folder, verify_manifest, write_json, write_manifest
from paddle_electra.weights import load_safetensors, save_safetensors

STATE_NAME = "trainer_state.json"
MODEL_FILE, OPTIMIZER_FILE = "model.safetensors", "optimizer.safetensors"
_STEP_DIR = re.compile(r"^step-(\d{8,})$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(root: str) -> list:
    """[(step, path)] of finished checkpoint directories under root, oldest first (unverified)."""
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        match = _STEP_DIR.match(name)
        if match and os.path.isfile(os.path.join(root, name, MANIFEST_NAME)):
            found.append((int(match.group(1)), os.path.join(root, name)))
    return sorted(found)


def verify_checkpoint(path: str) -> dict:
    """Check every file against manifest.json; WeightsError names the first bad file. Returns the manifest."""
    return verify_manifest(path, WeightsError)


def latest_checkpoint(root: str, log=print) -> Optional[str]:
    """The newest checkpoint under root that verifies; broken ones are reported and passed over."""
    for step, path in reversed(list_checkpoints(root)):
        try:
            verify_checkpoint(path)
            return path
        except WeightsError as e:
            log(f"warning: skipping checkpoint {path}: {e}")
    return None


def _optimizer_tensors(optimizer, model) -> tuple:
    """(tensors keyed by structured parameter names, non-tensor entries)."""
    by_internal = {p.name: name for name, p in model.named_parameters()}
    internal_names = sorted(by_internal, key=len, reverse=True)
    tensors, other = {}, {}
    for key, value in optimizer.state_dict().items():
        if key == "LR_Scheduler":
            continue  # saved from the scheduler itself
        if not hasattr(value, "numpy"):
            other[key] = value
            continue
        owner = next((p for p in internal_names if key.startswith(p + "_")), None)
        if owner is None:
            raise WeightsError(f"optimizer state {key!r} belongs to no model parameter")
        tensors[f"{by_internal[owner]}/{key[len(owner) + 1:]}"] = np.asarray(value.numpy())
    return tensors, other


def save_checkpoint(root: str, step: int, model, optimizer, scheduler, trainer_state: dict, tokenizer=None,
                    scaler=None, keep: int = 3) -> str:
    """Write OUTPUT/checkpoints/step-N atomically and delete all but the newest `keep`; return its path."""
    final = os.path.join(root, checkpoint_name(step))
    # the same step saved again (e.g. after a resume) is swapped out whole
    with atomic_folder(final) as tmp:
        save_safetensors({name: np.asarray(p.numpy()) for name, p in model.named_parameters()},
                         os.path.join(tmp, MODEL_FILE))
        opt_tensors, opt_other = _optimizer_tensors(optimizer, model)
        save_safetensors(opt_tensors, os.path.join(tmp, OPTIMIZER_FILE))
        state = dict(trainer_state, step=step, scheduler=scheduler.state_dict(), optimizer_extra=opt_other,
                     scaler=_scaler_state(scaler))
        write_json(os.path.join(tmp, STATE_NAME), state)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_manifest(tmp, step=step)
    for _, path in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)
    return final


def load_checkpoint(path: str, model, optimizer=None, scheduler=None, scaler=None, verify: bool = True) -> dict:
    """Restore what save_checkpoint wrote (strictly: every parameter, right shapes); return trainer_state."""
    if verify:
        verify_checkpoint(path)
    with open(os.path.join(path, STATE_NAME), encoding="utf-8") as f:
        state = json.load(f)
    tensors = load_safetensors(os.path.join(path, MODEL_FILE))
    params = dict(model.named_parameters())
    problems = [f"missing {n}" for n in params if n not in tensors]
    problems += [f"unexpected {n}" for n in tensors if n not in params]
    problems += [f"{n}: file {list(tensors[n].shape)} != model {list(p.shape)}" for n, p in params.items()
                 if n in tensors and list(tensors[n].shape) != list(p.shape)]
    if problems:
        raise WeightsError(f"{path}: checkpoint does not fit the model:\n  " + "\n  ".join(problems[:20]))
    for name, p in params.items():
        p.set_value(tensors[name])
    if optimizer is not None:
        saved = load_safetensors(os.path.join(path, OPTIMIZER_FILE))
        internal = {name: p.name for name, p in params.items()}
        restored = dict(state.get("optimizer_extra", {}))
        for key, value in saved.items():
            name, _, accumulator = key.rpartition("/")
            if name not in internal:
                raise WeightsError(f"{path}: optimizer state for unknown parameter {name!r}")
            restored[f"{internal[name]}_{accumulator}"] = value
        optimizer.set_state_dict(restored)
    if scheduler is not None:
        scheduler.set_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(_scaler_from_json(state["scaler"]))
    return state


def _scaler_state(scaler):
    """GradScaler.state_dict() as JSON: `scale` is a 1-element array there, and load_state_dict reads
    `state["scale"][0]`, so it stays a 1-element list (a bare float made fp16 resumes crash)."""
    if scaler is None:
        return None
    return {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) or hasattr(v, "numpy")
                else v.item() if hasattr(v, "item") else v)
            for k, v in scaler.state_dict().items()}


def _scaler_from_json(state: dict) -> dict:
    """The saved scaler state in the shape GradScaler.load_state_dict indexes; checkpoints written before the fix
    hold `scale` as a bare float."""
    state = dict(state)
    if "scale" in state:
        state["scale"] = np.atleast_1d(np.asarray(state["scale"], dtype=np.float32))
    return state


