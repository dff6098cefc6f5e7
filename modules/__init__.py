"""PaddleHub modules for the released Chinese ELECTRA models, one folder per name (generated from template/).

Each `modules/<name>/module.py` is a ~20-line `@moduleinfo` shim over `paddle_electra.hub_module.ElectraHubModule`.
The folders hold code only: `python -m converters package --model-dir DIR --name NAME` adds config, vocab and
weights and writes the installable archive; `python -m modules.install ARCHIVE` installs it after the safety checks;
`python -m modules.serve -m NAME` serves it on 127.0.0.1.
"""
import os

MODULES_DIR = os.path.dirname(os.path.abspath(__file__))
TEMPLATE_PATH = os.path.join(MODULES_DIR, "template", "module.py.tmpl")
