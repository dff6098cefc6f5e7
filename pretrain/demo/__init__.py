"""The main job and its experiments: the demo (`python -m pretrain.demo`, pipeline.py) and the studies that reuse its
stages (curve.py, domain.py, probe.py) or read its results (evidence.py). They are the only pretraining code that runs
finetune/, converters/ and modules/ (as child processes); the rest of pretrain/ is the library of a pretraining run."""
