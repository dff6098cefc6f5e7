"""PaddleHub integration, all in this folder (the commands in modules/ and `python -m converters package` call it):

- module.py     ElectraHubModule: the one implementation behind every module (`hub.Module(name=..., task=...)`:
                predict, get_embedding, hub.Trainer steps, @serving); HubTokenizer; the allow-list pdparams loader.
- home.py       the hub home (offline server config), archive checks and extraction, the archive manifest.
- package.py    model directory -> installable module archive (`python -m converters package`); the module.py
                template (module.py.tmpl) that also renders the 11 release folders (`python -m modules.generate`).
- install.py    `python -m modules.install ARCHIVE`: check, extract, verify, then hand the folder to hub.
- serve.py      `python -m modules.serve`: the loopback HTTP server with request and batch caps.
- training.py   what fine-tuning needs from a module: build it from a name / module folder / model directory, the
                layer-wise LR multiplier, random re-initialisation, the batch predictor (finetune/ uses it).

Nothing is imported here: home.prepare_hub_home() must run before anything imports paddlehub.
"""
