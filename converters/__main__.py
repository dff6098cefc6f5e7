"""`python -m converters <command>`: official TF / HF / PaddleNLP ELECTRA weights <-> paddle_electra model directories.

Commands (each writes its output folder atomically: built beside --out, renamed into place when complete):
  from-tf          official TF checkpoint (folder or prefix)      -> OUT/discriminator, OUT/generator
  from-release     official release zip (unpacked safely)         -> OUT/discriminator, OUT/generator
  from-hf          hfl/*-style HF folder                          -> OUT (discriminator, generator or backbone)
  download         hfl/* repository from the HF hub, then from-hf -> OUT
  from-paddlenlp   PaddleNLP model_state.pdparams folder          -> OUT (or OUT/discriminator + OUT/generator)
  to-hf            model directory -> HF folder (transformers ElectraForPreTraining / ElectraForMaskedLM)
  to-paddlenlp     model directory -> PaddleNLP folder (ElectraDiscriminator / ElectraGenerator .from_pretrained)
  package          model directory -> PaddleHub module archive (paddle_electra/hub/package.py)
Errors are one line on stderr naming the file or tensor at fault, with exit status 2.
"""
from __future__ import annotations

import os
import sys
import warnings
import zipfile

from paddle_electra.config import PRESET_SIZES
from paddle_electra.errors import EXIT_ERROR, ConfigError, command  # noqa: F401  (EXIT_ERROR: the exit contract)
from paddle_electra.runconfig import ArgumentParser


class UsageError(ConfigError):
    """A bad command line: reported like every other error, on one line."""


def _existing_file(path, flag):
    if path is not None and not os.path.isfile(path):
        raise UsageError(f"{path}: {flag} file not found")


def _existing_dir(path, flag):
    if not os.path.isdir(path):
        raise UsageError(f"{path}: {flag} folder not found")


def _check_out(args, *sources):
    """--out must not be (or contain) an input: --force would otherwise delete the very files being converted."""
    from .hf import check_output_dir
    out = os.path.realpath(args.out)
    for source in sources:
        if source is None:
            continue
        src = os.path.realpath(source)
        if out == src or src.startswith(out + os.sep):
            raise UsageError(f"{args.out}: --out is the input {source} or holds it; choose another folder")
    check_output_dir(args.out, args.force)


# ---- commands ------------------------------------------------------------------------------------------------------
def _tf_options(p):
    p.add_argument("--size", choices=PRESET_SIZES, help="preset configs when no discriminator.json/generator.json")
    p.add_argument("--discriminator-config", metavar="JSON", help="discriminator config (HF-style json)")
    p.add_argument("--generator-config", metavar="JSON", help="generator config (HF-style json)")
    p.add_argument("--vocab", metavar="FILE", help="vocab.txt (default: the one beside the checkpoint)")
    p.add_argument("--skip-task-specific", action="store_true",
                   help="fine-tuned checkpoints: drop task_specific/* and write the backbone alone")


def _tf_validate(args):
    _existing_file(args.discriminator_config, "--discriminator-config")
    _existing_file(args.generator_config, "--generator-config")
    _existing_file(args.vocab, "--vocab")


def cmd_from_tf(args):
    """official TF checkpoint -> OUT/discriminator and OUT/generator"""
    from .tf_official import convert_checkpoint
    if not os.path.exists(args.checkpoint) and not os.path.isfile(args.checkpoint + ".index"):
        raise UsageError(f"{args.checkpoint}: --checkpoint not found (a folder, or a prefix with a .index file)")
    _tf_validate(args)
    _check_out(args, args.checkpoint, args.discriminator_config, args.generator_config, args.vocab)
    written = convert_checkpoint(args.checkpoint, args.out, size=args.size,
                                 discriminator_config=args.discriminator_config,
                                 generator_config=args.generator_config, vocab=args.vocab,
                                 skip_task_specific=args.skip_task_specific, force=args.force)
    return ", ".join(f"{os.path.join(args.out, role)} ({head})" for role, head in written.items())


def cmd_from_release(args):
    """official release zip -> OUT/discriminator and OUT/generator"""
    from .download import convert_release
    _existing_file(args.zip, "--zip")
    if not zipfile.is_zipfile(args.zip):
        raise UsageError(f"{args.zip}: --zip is not a zip archive")
    _tf_validate(args)
    _check_out(args, args.zip, args.discriminator_config, args.generator_config, args.vocab)
    written = convert_release(args.zip, args.out, size=args.size, discriminator_config=args.discriminator_config,
                              generator_config=args.generator_config, vocab=args.vocab,
                              skip_task_specific=args.skip_task_specific, force=args.force)
    return ", ".join(f"{os.path.join(args.out, role)} ({head})" for role, head in written.items())


def cmd_from_hf(args):
    """HF folder (config.json, vocab.txt, model.safetensors or pytorch_model.bin) -> OUT"""
    from .hf import from_hf
    _existing_dir(args.model, "--model")
    _existing_file(args.config, "--config")
    _existing_file(args.vocab, "--vocab")
    _check_out(args, args.model, args.config, args.vocab)
    head = from_hf(args.model, args.out, allow_pickle=args.allow_pickle, config_path=args.config, vocab=args.vocab,
                   force=args.force)
    return f"{args.out} ({head})"


def cmd_download(args):
    """hfl/* repository on the HF hub -> OUT (needs network)"""
    from .download import download_hf
    if args.repo.count("/") != 1 or not all(args.repo.split("/")):
        raise UsageError(f"--repo {args.repo!r}: expected OWNER/NAME, "
                         "e.g. hfl/chinese-electra-180g-small-discriminator")
    _existing_file(args.config, "--config")
    _check_out(args, args.config)
    head = download_hf(args.repo, args.out, revision=args.revision, allow_pickle=args.allow_pickle,
                       cache_dir=args.cache_dir, config_path=args.config, force=args.force)
    return f"{args.out} ({head})"


def cmd_from_paddlenlp(args):
    """PaddleNLP folder (model_state.pdparams + config.json or model_config.json) -> OUT"""
    from .paddlenlp_weights import from_paddlenlp
    _existing_dir(args.model, "--model")
    _existing_file(args.vocab, "--vocab")
    _check_out(args, args.model, args.vocab)
    written = from_paddlenlp(args.model, args.out, allow_pickle=args.allow_pickle, vocab=args.vocab, force=args.force)
    return ", ".join(f"{args.out if part == 'single' else os.path.join(args.out, part)} ({head})"
                     for part, head in written.items())


def cmd_to_hf(args):
    """model directory -> HF folder that transformers loads"""
    from .hf import to_hf
    _existing_dir(args.model, "--model")
    _check_out(args, args.model)
    return f"{args.out} ({to_hf(args.model, args.out, force=args.force)})"


def cmd_to_paddlenlp(args):
    """model directory -> PaddleNLP folder (model_state.pdparams, config.json, model_config.json)"""
    from .paddlenlp_weights import to_paddlenlp
    _existing_dir(args.model, "--model")
    _check_out(args, args.model)
    return f"{args.out} ({to_paddlenlp(args.model, args.out, force=args.force)})"


def cmd_package(args):
    """model directory -> installable PaddleHub module archive (see paddle_electra/hub/package.py)"""
    from paddle_electra import fileio
    from paddle_electra.hub.package import package
    _existing_dir(args.model_dir, "--model-dir")
    archive = package(args.model_dir, args.name, args.out, args.version, args.allow_other_shape,
                      args.description, args.author)
    return f"{archive}  sha256 {fileio.sha256_file(archive)}"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m converters", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name, func, out_help="output folder (must not exist or be empty, unless --force)"):
        p = sub.add_parser(name, help=func.__doc__, description=func.__doc__)
        p.set_defaults(func=func)
        p.add_argument("--out", required=True, metavar="DIR", help=out_help)
        p.add_argument("--force", action="store_true", help="replace a non-empty --out")
        return p

    p = command("from-tf", cmd_from_tf)
    p.add_argument("--checkpoint", required=True, metavar="DIR_OR_PREFIX",
                   help="folder with a `checkpoint` file or one *.index, or the prefix (…/electra_small)")
    _tf_options(p)
    p = command("from-release", cmd_from_release)
    p.add_argument("--zip", required=True, metavar="FILE", help="the official release zip")
    _tf_options(p)
    pickle_help = "allow a pickle weights file (can run code when loaded: only for files you trust)"
    p = command("from-hf", cmd_from_hf)
    p.add_argument("--model", required=True, metavar="DIR", help="HF model folder")
    p.add_argument("--config", metavar="JSON", help="use this config instead of the folder's config.json")
    p.add_argument("--vocab", metavar="FILE", help="vocab.txt (default: the folder's)")
    p.add_argument("--allow-pickle", action="store_true", help=pickle_help + " (pytorch_model.bin)")
    p = command("download", cmd_download)
    p.add_argument("--repo", required=True, help="HF hub repository, e.g. hfl/chinese-electra-180g-small-discriminator")
    p.add_argument("--revision", help="branch, tag or commit (default: main)")
    p.add_argument("--cache-dir", help="huggingface_hub cache folder (default: its own)")
    p.add_argument("--config", metavar="JSON", help="use this config instead of the repository's config.json")
    p.add_argument("--allow-pickle", action="store_true", help=pickle_help + " (when the repo has no safetensors)")
    p = command("from-paddlenlp", cmd_from_paddlenlp)
    p.add_argument("--model", required=True, metavar="DIR", help="PaddleNLP model folder")
    p.add_argument("--vocab", metavar="FILE", help="vocab.txt (default: the folder's)")
    p.add_argument("--allow-pickle", action="store_true", help=pickle_help + " (model_state.pdparams; required)")
    p = command("to-hf", cmd_to_hf)
    p.add_argument("--model", required=True, metavar="DIR", help="paddle_electra model directory")
    p = command("to-paddlenlp", cmd_to_paddlenlp)
    p.add_argument("--model", required=True, metavar="DIR", help="paddle_electra model directory")
    from paddle_electra.hub.package import add_arguments  # the PaddleHub packager owns its flags (its --out is a folder for archives)
    add_arguments(sub.add_parser("package", help=cmd_package.__doc__, description=cmd_package.__doc__)
                  ).set_defaults(func=cmd_package)
    return parser


@command
def main(argv=None) -> int:
    """Run one command; errors become one line on stderr and exit status 2."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ start-up logging
    warnings.filterwarnings("ignore", message="No ccache found")  # printed by every `import paddle`
    args = build_parser().parse_args(argv)
    done = args.func(args)
    print(f"wrote {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
