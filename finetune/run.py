"""Fine-tune a Chinese ELECTRA PaddleHub module on one task, for one or more seeds.

    python finetune/run.py --task xnli --model chinese-electra-small --data-dir ../shared/data/xnli \\
        [--output-dir DIR] [--seeds N] [--hparams params.json] [--learning_rate 3e-4 --num_train_epochs 2 ...]

--model: an installed module name, a module folder (module.py) or a model directory (config.json +
model.safetensors + vocab.txt). Settings resolve as FinetuneConfig defaults -> the task's defaults -> --hparams
json (official key names, e.g. the seed's params_cmrc2018.json) -> `--key value` flags; unknown keys are errors.
Writes <output>/metrics.json (every seed, and max / mean over seeds), <output>/config.json and per seed the
predictions, VisualDL logs and the best checkpoint (see finetune/loop.py). Re-running the same command resumes.
`--list-tasks` prints the registered tasks.
"""
from __future__ import annotations

import logging
import os
import statistics
import sys

from paddle_electra.errors import command
from paddle_electra.fileio import write_json
from paddle_electra.runconfig import ArgumentParser

log = logging.getLogger("finetune")

# fields that may change between a run and its resumption without changing what is trained
RUNTIME_FIELDS = {"device", "num_workers", "log_every", "num_trials", "do_test", "do_eval", "eval_batch_size",
                  "keep_all_checkpoints", "max_eval_examples"}
SUMMARY_KEYS = ("accuracy", "EM", "F1", "f1", "precision", "recall")


def parse_args(argv):
    # allow_abbrev=False: FinetuneConfig's --seed must not be taken as an abbreviation of --seeds
    parser = ArgumentParser(
        description="Fine-tune Chinese ELECTRA (PaddleHub module) on a task; extra --key value pairs set "
                    "FinetuneConfig fields (see finetune/config.py).", allow_abbrev=False)
    parser.add_argument("--task", help="registered task name (see --list-tasks)")
    parser.add_argument("--model", help="installed module name, module folder or model directory")
    parser.add_argument("--data-dir", help="folder with the task's train/dev(/test) files (not for embedded tasks)")
    parser.add_argument("--output-dir", help="default: runs/finetune/<task>-<model name>")
    parser.add_argument("--seeds", type=int, help="number of seeds (official num_trials); reports max and mean")
    parser.add_argument("--hparams", help="json file of FinetuneConfig fields (official key names)")
    parser.add_argument("--hub-home", help="PaddleHub home (default $HUB_HOME, else ./.paddlehub)")
    parser.add_argument("--list-tasks", action="store_true", help="print the registered tasks and exit")
    return parser.parse_known_args(argv)


def list_tasks():
    from finetune.tasks import get_task, task_names
    for name in task_names():
        task = get_task(name)
        data = "embedded" if not task.needs_data_dir else "needs --data-dir"
        print(f"{name:20s} {task.kind:22s} {data:17s} {task.description}")


def model_config(spec, task):
    """The ElectraConfig of the model behind `spec`, from its config.json (building the module if needed)."""
    from paddle_electra.weights import read_config
    from paddle_electra.hub import training as hubmodel
    source, value = hubmodel.model_source(spec)
    folder = value if source != "name" else None
    if source == "name":
        import paddlehub.env as hub_env
        folder = os.path.join(hub_env.MODULE_HOME, value.replace("-", "_"))
    if folder and os.path.isfile(os.path.join(folder, "config.json")):
        return read_config(folder)
    module = hubmodel.build_module(spec, task.hub_kwargs())
    return hubmodel.backbone(module).config


def check_model_limits(config, model_cfg):
    """Settings the model cannot serve, refused before any data is featurized."""
    from paddle_electra.errors import ConfigError
    positions = model_cfg.max_position_embeddings
    if config.max_seq_length > positions:
        raise ConfigError(f"field 'max_seq_length' is {config.max_seq_length} but the model has only {positions} "
                          f"position embeddings (max_position_embeddings in its config.json)")


def make_output_dir(path):
    """Create --output-dir, or a ConfigError naming it (a file in the way, no permission, ...)."""
    from paddle_electra.errors import ConfigError
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--output-dir {path}: cannot create the folder ({err.strerror or err})") from None


def check_resumable(path, config_dict):
    """A run folder may only be resumed with the same training settings."""
    import json
    if not os.path.exists(path):
        return
    from finetune.config import FinetuneConfig
    with open(path, encoding="utf-8") as f:
        saved = json.load(f).get("config", {})
    # a field added after the run was written counts as its default (a folder of an older version still resumes)
    saved = dict({k: v for k, v in FinetuneConfig().to_dict().items() if k not in saved}, **saved)
    changed = sorted(k for k in set(saved) | set(config_dict)
                     if k not in RUNTIME_FIELDS and saved.get(k) != config_dict.get(k))
    if changed:
        from paddle_electra.errors import ConfigError
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {config_dict.get(k)!r}" for k in changed)
        raise ConfigError(f"{path}: this output folder holds a run with other settings ({details}); resume with the "
                          f"same settings or pass another --output-dir")


def summarize(results, metric_keys):
    """{split: {metric: {max, mean, values}}} over seeds, and the seed's "max (mean)" strings."""
    summary = {}
    for split in ("dev", "test"):
        per_metric = {}
        for key in metric_keys:
            values = [r[split][key] for r in results if split in r and isinstance(r[split].get(key), (int, float))]
            if values:
                per_metric[key] = {"max": max(values), "mean": statistics.fmean(values), "values": values,
                                   "table": f"{max(values):.1f} ({statistics.fmean(values):.1f})"}
        if per_metric:
            summary[split] = per_metric
    return summary


def format_table(task_name, summary, n_seeds):
    lines = [f"{task_name}: max (mean) over {n_seeds} seed(s)"]
    for split, per_metric in summary.items():
        cells = "  ".join(f"{key} {entry['table']}" for key, entry in per_metric.items())
        lines.append(f"  {split:5s} {cells}")
    return "\n".join(lines)


@command
def main(argv=None) -> int:
    args, rest = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run(args, rest)


def run(args, rest):
    from paddle_electra.hub.home import prepare_hub_home
    prepare_hub_home(args.hub_home)  # before anything imports paddlehub

    from finetune import config as fc
    from finetune.tasks import get_task
    from paddle_electra.errors import ConfigError

    if args.list_tasks:
        list_tasks()
        return 0
    hparams = fc.read_hparams(args.hparams) if args.hparams else {}
    flags = fc.parse_flags(rest)
    if args.seeds is not None:
        flags["num_trials"] = str(args.seeds)
    name = args.task or _task_from_hparams(hparams, args.hparams)
    if not name:
        raise ConfigError("pass --task (or task_names in --hparams); --list-tasks shows the choices")
    if not args.model:
        raise ConfigError("pass --model: an installed module name, a module folder or a model directory")
    task = get_task(name)
    from paddle_electra.hub.training import model_source
    model_source(args.model)  # a wrong --model fails before the data is read
    if task.needs_data_dir and not args.data_dir:
        raise ConfigError(f"task {name} reads its files from --data-dir")
    config = fc.resolve(task, hparams, flags, hparams_source=args.hparams or "hparams")
    model_cfg = model_config(args.model, task)
    config = fc.finalize(config, task, fc.infer_model_size(model_cfg))
    check_model_limits(config, model_cfg)
    if config.load_checkpoint:
        from paddle_electra.hub.training import check_checkpoint_head, module_kwargs
        check_checkpoint_head(config.load_checkpoint, module_kwargs(task, config))  # before anything is written
    output = args.output_dir or os.path.join("runs", "finetune",
                                             f"{name}-{os.path.basename(os.path.normpath(args.model))}")
    make_output_dir(output)
    splits = task.load_splits(args.data_dir if task.needs_data_dir else None, config)
    config_path = os.path.join(output, "config.json")
    check_resumable(config_path, config.to_dict())
    write_json(config_path, {"task": name, "model": args.model, "data_dir": args.data_dir, "config": config.to_dict()})

    use_gpu = _use_gpu(config.device)
    from finetune.loop import SeedRun, TaskData
    data = TaskData(task, config, splits, use_gpu)
    log.info("task %s (%s), model %s (%s): lr %g, layer-wise decay %g, %d epoch(s), batch %d, max_seq_length %d",
             name, task.kind, args.model, config.model_size, config.learning_rate, config.layerwise_lr_decay,
             config.num_train_epochs, config.train_batch_size, config.max_seq_length)
    results = []
    for i in range(config.num_trials):
        seed = config.seed + i
        results.append(SeedRun(task, config, args.model, splits, seed, os.path.join(output, f"seed_{seed}"),
                               data).run())
    summary = summarize(results, SUMMARY_KEYS)
    metrics = {"task": name, "model": args.model, "model_size": config.model_size, "metric": task.metric,
               "seeds": [r["seed"] for r in results], "summary": summary, "runs": results,
               "data": data.stats or {k: {"source": s.source, "examples": len(s.examples),
                                          "reader": s.stats.to_dict()} for k, s in splits.items()}}
    if hasattr(task, "label_source"):
        metrics["label_source"] = task.label_source
    write_json(os.path.join(output, "metrics.json"), metrics)
    print(format_table(name, summary, len(results)))
    print(f"metrics: {os.path.join(output, 'metrics.json')}")
    return 0


def _task_from_hparams(hparams, source):
    names = hparams.get("task_names") or hparams.get("task")
    if isinstance(names, list):
        return names[0] if len(names) == 1 else None
    return names


def _use_gpu(device):
    import paddle
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "gpu" and not has_gpu:
        from paddle_electra.errors import ConfigError
        raise ConfigError("device is gpu but this Paddle build sees no CUDA GPU")
    return has_gpu if device == "auto" else device == "gpu"


if __name__ == "__main__":
    sys.exit(main())
