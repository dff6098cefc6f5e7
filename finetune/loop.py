"""One seed of fine-tuning: build the module, train epoch by epoch through hub.Trainer, evaluate on dev after each
epoch, keep the best epoch, then predict dev (and test) with it. Re-running the same command resumes.

Layout of a seed folder (`<output>/seed_<n>/`):
  epoch_<N>/model.pdparams|.pdopt   the checkpoint of the last finished epoch (older ones are pruned unless
           /manifest.json           keep_all_checkpoints), written into .tmp-epoch_<N>-<pid>/ and renamed into place;
                                    manifest.json holds both files' sha256. A new process resumes from the largest N
                                    whose manifest verifies (a damaged or half-written one is skipped). The two files
                                    stay in paddle's pickle format because hub.Trainer's load_model reads them; they
                                    are only ever files this run wrote, and are unpickled only after the checksum
                                    matches (untrusted weights come in through safetensors, never through these)
  visualization/                    VisualDL logs: train/loss, train/lr every log_every steps, dev/<metric> per epoch
                                    (steps are global, so a resumed run continues the curves instead of restarting)
  history.json                      dev metrics of every evaluated epoch (written after each epoch)
  best_model/model.safetensors      the module's parameters at the best dev epoch, for
                                    hub.Module(..., load_checkpoint=...) or --load_checkpoint; best_model/task.json
                                    (the folder is staged in .tmp-best_model-<pid>/ and swapped in whole)
  dev_predictions.*, test_predictions.*, result.json (written last: the seed is complete)
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil

import numpy as np

from paddle_electra.errors import WeightsError
from paddle_electra.fileio import (MANIFEST_NAME, atomic_folder, recover_folder, verify_manifest, write_json,
                                   write_manifest)

from paddle_electra.hub import training as hubmodel

log = logging.getLogger("finetune")


def _trainer_class():
    """hub.Trainer with a tqdm bar and VisualDL scalars at the global step (defined lazily: paddlehub must be
    imported after prepare_hub_home)."""
    from paddlehub.finetune.trainer import Trainer
    from tqdm import tqdm

    class FinetuneTrainer(Trainer):
        """hub.Trainer, plus a progress bar and global-step VisualDL logging (hub's own restarts at 0 per call)."""

        def __init__(self, *args, steps_per_epoch, log_every, **kwargs):
            super().__init__(*args, **kwargs)
            self.steps_per_epoch, self.log_every = steps_per_epoch, log_every
            self.global_step = self.current_epoch * steps_per_epoch
            self.bar = None

        def training_step(self, batch, batch_idx):
            loss, metrics = super().training_step(batch, batch_idx)
            self.global_step += 1
            value = float(loss)
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss is {value} at step {self.global_step}: lower the learning "
                                         f"rate or check the data")
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            if self.global_step % self.log_every == 0 and self.use_vdl:
                self.log_writer.add_scalar(tag="train/loss", step=self.global_step, value=value)
                self.log_writer.add_scalar(tag="train/lr", step=self.global_step, value=float(self.optimizer.get_lr()))
            return loss, metrics

        def _save_checkpoint(self):
            """epoch_<N>/ written atomically with a manifest (hub's own save writes both files in place)."""
            save_epoch_checkpoint(self.checkpoint_dir, self.current_epoch, self.model.state_dict(),
                                  self.optimizer.state_dict())

        def _load_checkpoint(self):
            """Resume from the newest epoch checkpoint whose manifest verifies (hub's takes the largest epoch_<N>,
            half-written or not)."""
            epoch, path = latest_epoch_checkpoint(self.checkpoint_dir)
            if epoch:
                self.current_epoch = epoch
                self.load_model(path)

        def train_epoch(self, dataset, batch_size, collate_fn, num_workers, total_epochs):
            """One epoch through hub.Trainer.train (which saves epoch_<N> at its end)."""
            self.bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {self.current_epoch + 1}/{total_epochs}",
                            unit="step", leave=False)
            try:
                # log_interval beyond the epoch: hub's own step-0-based logging would duplicate ours
                self.train(dataset, epochs=1, batch_size=batch_size, num_workers=num_workers,
                           log_interval=self.steps_per_epoch + 1, save_interval=1, collate_fn=collate_fn)
            finally:
                self.bar.close()
                self.bar = None

    return FinetuneTrainer


EPOCH_FILES = ("model.pdparams", "model.pdopt")


def save_epoch_checkpoint(folder, epoch, model_state, optimizer_state):
    """Write `folder`/epoch_<epoch>/ (model.pdparams, model.pdopt, manifest.json with their sha256) whole or not at
    all (fileio.atomic_folder); an invalid epoch_<N> that resuming skipped is replaced."""
    import paddle
    with atomic_folder(os.path.join(folder, f"epoch_{epoch}")) as tmp:
        for name, state in zip(EPOCH_FILES, (model_state, optimizer_state)):
            paddle.save(state, os.path.join(tmp, name))
        write_manifest(tmp, EPOCH_FILES, epoch=epoch)


def verify_epoch_checkpoint(path):
    """Raise WeightsError naming the file when an epoch checkpoint folder is incomplete or fails its manifest."""
    manifest = verify_manifest(path, WeightsError)
    for name in EPOCH_FILES:
        if name not in manifest["files"]:
            raise WeightsError(f"{os.path.join(path, MANIFEST_NAME)}: no checksum for {name}")


def latest_epoch_checkpoint(folder):
    """(N, path) of the largest epoch_<N> in `folder` that verifies, else (0, None); removes the temp folders of
    interrupted saves."""
    if not os.path.isdir(folder):
        return 0, None
    names = os.listdir(folder)
    for name in names:
        if name.startswith(".tmp-epoch_"):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    epochs = sorted((int(n[6:]) for n in names if n.startswith("epoch_") and n[6:].isdigit()), reverse=True)
    for epoch in epochs:
        path = os.path.join(folder, f"epoch_{epoch}")
        try:
            verify_epoch_checkpoint(path)
        except WeightsError as err:
            log.warning("skipping epoch checkpoint %s: %s", path, err)
            continue
        return epoch, path
    return 0, None


def epoch_seed(seed, epoch):
    """The RNG seed of one epoch: a run resumed at any epoch draws the same dropout masks as an uninterrupted one."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


GROUP_BATCHES = 50  # group_by_length: batches per sorted run of examples (the randomness kept within an epoch)


def _epoch_dataset(rows, seed, group_batch_size=None):
    """Map-style dataset whose order is a permutation fixed by (seed, epoch): hub's sampler shuffles with
    RandomState(epoch) from 0 in every train() call, which alone would repeat one order for every epoch and seed.

    With `group_batch_size` (group_by_length) every item is a whole batch of rows of similar length, to be read with
    hub's batch_size 1 (`unwrap_batches`): each run of GROUP_BATCHES batches' rows of the epoch's permutation is sorted
    by length and cut into batches, and the batches are shuffled; the number of batches is ceil(rows / batch)."""
    import paddle

    class EpochShuffled(paddle.io.Dataset):
        def __init__(self):
            super().__init__()
            self.order = np.arange(len(rows))
            self.batches = None

        def set_epoch(self, epoch):
            rng = np.random.RandomState([seed, epoch])
            self.order = rng.permutation(len(rows))
            if group_batch_size:
                self.batches = group_by_length(self.order, [len(r[0]) for r in rows], group_batch_size, rng)

        def __getitem__(self, index):
            if self.batches is not None:
                return [rows[i] for i in self.batches[index]]
            return rows[self.order[index]]

        def __len__(self):
            return len(rows) if self.batches is None else len(self.batches)

    return EpochShuffled()


def group_by_length(order, lengths, batch_size, rng):
    """Batches (index arrays) of similar length: runs of GROUP_BATCHES x batch_size indices of `order`, each sorted by
    length (stable) and cut every batch_size, all batches then shuffled with `rng`."""
    from paddle_electra.batching import length_buckets
    run = GROUP_BATCHES * batch_size
    batches = []
    for start in range(0, len(order), run):
        chunk = np.asarray(order[start:start + run])
        batches += [chunk[b] for b in length_buckets([lengths[i] for i in chunk], batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def unwrap_batches(collate):
    """hub's loader with batch_size 1 over a dataset of whole batches: collate the one batch it hands over."""
    def collate_batch(items):
        return collate(items[0])
    return collate_batch


def set_seed(seed):
    import random

    import paddle
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def _main_value(metrics, name):
    value = metrics.get(name)
    return float(value) if value is not None else float("-inf")


def _load_json(path, default):
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class SeedRun:
    """Train and evaluate one seed; `run()` returns the seed's result dict (also written to result.json)."""

    def __init__(self, task, config, model_spec, splits, seed, folder, data):
        self.task, self.config, self.model_spec, self.splits = task, config, model_spec, splits
        self.seed, self.folder, self.data = seed, folder, data  # data: the shared featurized splits (lazily filled)

    def build(self):
        """Module (+ tokenizer features on first use) and optimizer."""
        from paddle_electra.optim import build_optimizer, linear_warmup_decay

        cfg = self.config
        set_seed(self.seed)
        module = hubmodel.build_module(self.model_spec, hubmodel.module_kwargs(self.task, cfg),
                                       cfg.load_checkpoint)
        if cfg.random_init:
            hubmodel.reinitialize_backbone(module, self.seed)
        self.data.prepare(module)
        backbone = hubmodel.backbone(module)
        num_layers = backbone.config.num_hidden_layers
        steps_per_epoch = max(1, math.ceil(len(self.data.train_rows) / cfg.train_batch_size))
        total = steps_per_epoch * cfg.num_train_epochs
        schedule = linear_warmup_decay(cfg.learning_rate, int(total * cfg.warmup_proportion), total)
        multiplier = None
        if cfg.layerwise_lr_decay is not None and cfg.layerwise_lr_decay != 1.0:
            multiplier = hubmodel.layerwise_multiplier(module, num_layers, cfg.layerwise_lr_decay)
        optimizer = build_optimizer(module, schedule, weight_decay=cfg.weight_decay_rate, clip_norm=cfg.clip_norm,
                                    epsilon=cfg.adam_epsilon, multiplier=multiplier)
        return module, optimizer, steps_per_epoch, total

    def run(self):
        """The seed's result. Everything runs in a fresh name scope: parameter and optimizer-slot names
        ("linear_3.w_0_moment1_0") then match between the process that saved a checkpoint and the one resuming it,
        whichever seeds ran before in either."""
        import paddle
        paddle.set_device("gpu" if self.data.use_gpu else "cpu")  # hub.Trainer sets it too, but only when training
        with paddle.utils.unique_name.guard():
            return self._run()

    def _run(self):
        cfg, task = self.config, self.task
        result_path = os.path.join(self.folder, "result.json")
        done = _load_json(result_path, None)
        if done is not None:
            log.info("seed %d: already complete (%s), skipped", self.seed, result_path)
            return done
        os.makedirs(self.folder, exist_ok=True)
        _recover_best_model(self.folder)
        module, optimizer, steps_per_epoch, total_steps = self.build()
        predict = hubmodel.predictor(module, self.data.pad_id)
        best_path = os.path.join(self.folder, "best_model", "model.safetensors")
        history_path = os.path.join(self.folder, "history.json")
        history = _load_json(history_path, [])

        if cfg.do_train:
            use_gpu = self.data.use_gpu
            trainer = _trainer_class()(module, optimizer, use_gpu=use_gpu, use_vdl=True, checkpoint_dir=self.folder,
                                       steps_per_epoch=steps_per_epoch, log_every=cfg.log_every)
            history = [h for h in history if h["epoch"] <= trainer.current_epoch]
            if trainer.current_epoch:
                log.info("seed %d: resumed after epoch %d (step %d of %d)", self.seed, trainer.current_epoch,
                         trainer.global_step, total_steps)
                if not any(h["epoch"] == trainer.current_epoch for h in history):
                    history = self._evaluate_epoch(module, predict, trainer, history, best_path, history_path)
            grouped = cfg.train_batch_size if cfg.group_by_length else None
            dataset = _epoch_dataset(self.data.train_rows, self.seed, grouped)
            collate = task.collate(self.data.pad_id)
            while trainer.current_epoch < cfg.num_train_epochs:
                dataset.set_epoch(trainer.current_epoch + 1)
                set_seed(epoch_seed(self.seed, trainer.current_epoch + 1))
                if grouped:  # the dataset's items are whole batches
                    trainer.train_epoch(dataset, 1, unwrap_batches(collate), cfg.num_workers, cfg.num_train_epochs)
                else:
                    trainer.train_epoch(dataset, cfg.train_batch_size, collate, cfg.num_workers,
                                        cfg.num_train_epochs)
                self._prune(trainer.current_epoch)
                if cfg.eval_every_epoch or trainer.current_epoch == cfg.num_train_epochs:
                    history = self._evaluate_epoch(module, predict, trainer, history, best_path, history_path)
            if os.path.exists(best_path):
                from paddle_electra.weights import load_safetensors, load_state
                load_state(module, load_safetensors(best_path), best_path, droppable_prefixes=())
        return self._finish(module, predict, history, result_path)

    def _evaluate_epoch(self, module, predict, trainer, history, best_path, history_path):
        """Dev metrics of the current weights; saves best_model/ and the dev predictions when they are the best."""
        epoch = trainer.current_epoch
        metrics, predictions = self._evaluate(module, predict, "dev")
        log.info("seed %d epoch %d dev: %s", self.seed, epoch, _brief(metrics))
        if trainer.use_vdl:
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and name not in ("count", "TOTAL", "SKIP"):
                    trainer.log_writer.add_scalar(tag=f"dev/{name}", step=trainer.global_step, value=float(value))
        best_before = max((_main_value(h["dev"], self.task.metric) for h in history), default=float("-inf"))
        history = history + [{"epoch": epoch, "step": trainer.global_step, "dev": metrics}]
        if _main_value(metrics, self.task.metric) > best_before or not os.path.exists(best_path):
            _write_best_model(self.folder, module, {
                "task": self.task.name, "hub_kwargs": _jsonable(hubmodel.module_kwargs(self.task, self.config)),
                "epoch": epoch, "dev": metrics, "model": self.model_spec, "seed": self.seed})
            self.task.write_predictions(predictions, os.path.join(self.folder, "dev_predictions"))
        write_json(history_path, history)
        return history

    def _evaluate(self, module, predict, split_name):
        module.eval()
        try:
            return self.task.evaluate(predict, self.splits[split_name], self.data.features[split_name], self.config)
        finally:
            module.train()

    def _prune(self, epoch):
        if self.config.keep_all_checkpoints:
            return
        for name in os.listdir(self.folder):
            if name.startswith("epoch_") and name[6:].isdigit() and int(name[6:]) < epoch:
                shutil.rmtree(os.path.join(self.folder, name), ignore_errors=True)

    def _finish(self, module, predict, history, result_path):
        cfg = self.config
        best = max(history, key=lambda h: _main_value(h["dev"], self.task.metric)) if history else None
        result = {"seed": self.seed, "best_epoch": best["epoch"] if best else None, "history": history}
        if cfg.do_eval:
            if best is None:  # no training here (do_train false): evaluate the weights as loaded
                metrics, predictions = self._evaluate(module, predict, "dev")
                self.task.write_predictions(predictions, os.path.join(self.folder, "dev_predictions"))
                result["dev"] = metrics
            else:
                result["dev"] = best["dev"]
        if cfg.do_test and "test" in self.splits:
            metrics, predictions = self._evaluate(module, predict, "test")
            self.task.write_predictions(predictions, os.path.join(self.folder, "test_predictions"))
            result["test"] = metrics
        write_json(result_path, result)
        return result


def _write_best_model(folder, module, task_info):
    """best_model/ (model.safetensors + task.json) staged and swapped in whole (fileio.atomic_folder): the two files
    always describe the same epoch."""
    with atomic_folder(os.path.join(folder, "best_model")) as tmp:
        module.save_checkpoint(os.path.join(tmp, "model.safetensors"))
        write_json(os.path.join(tmp, "task.json"), task_info)


def _recover_best_model(folder):
    """Undo what a kill inside _write_best_model left: drop the staged folder, put back the swapped-out one."""
    recover_folder(os.path.join(folder, "best_model"))


class TaskData:
    """The featurized splits, shared by all seeds; featurized on first use with the first module's tokenizer."""

    def __init__(self, task, config, splits, use_gpu):
        self.task, self.config, self.splits, self.use_gpu = task, config, splits, use_gpu
        self.features, self.train_rows, self.pad_id, self.tokenizer = None, [], None, None
        self.stats = {}

    def prepare(self, module):
        tokenizer = module.get_tokenizer()
        if self.features is not None:
            return
        self.check_model(module, tokenizer)
        self.tokenizer, self.pad_id, self.features = tokenizer, tokenizer.pad_token_id, {}
        for name, split in self.splits.items():
            training = name == "train"
            features = self.task.featurize(split.examples, tokenizer, self.config, training)
            self.features[name] = features
            self.stats[name] = {"source": split.source, "examples": len(split.examples),
                                "reader": split.stats.to_dict(),
                                "featurize": {k: v for k, v in features.stats.items() if not k.startswith("_")}}
            log.info("%s: %d examples -> %d features (%s)", name, len(split.examples), len(features.rows),
                     split.source)
        if "train" in self.features:
            self.train_rows = self.features["train"].rows

    def check_model(self, module, tokenizer):
        """The official keys vocab_size / do_lower_case, when given, must describe the model being fine-tuned."""
        from paddle_electra.errors import ConfigError
        cfg = self.config
        model_vocab = hubmodel.backbone(module).config.vocab_size
        if cfg.vocab_size is not None and cfg.vocab_size != model_vocab:
            raise ConfigError(f"field 'vocab_size' is {cfg.vocab_size} but the model's config.json says {model_vocab}")
        lower = getattr(tokenizer, "do_lower_case", None)
        if cfg.do_lower_case is not None and lower is not None and cfg.do_lower_case != lower:
            raise ConfigError(f"field 'do_lower_case' is {cfg.do_lower_case} but the model's tokenizer has {lower}")


def _brief(metrics):
    keys = [k for k in ("accuracy", "EM", "F1", "f1", "precision", "recall", "loss") if k in metrics]
    return " ".join(f"{k}={metrics[k]:.4f}" if isinstance(metrics[k], float) else f"{k}={metrics[k]}" for k in keys)


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))
