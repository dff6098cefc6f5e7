"""Install a module archive into PaddleHub after checking it: `python -m modules.install ARCHIVE [--hub-home DIR]`.

`hub install x.tar.gz` extracts members wherever their paths point (`../`, absolute paths, symlinks) and pip-installs
a bundled requirements.txt. This command refuses such archives (paddle_electra.hub.home.check_archive), extracts only
regular files below a temp folder, verifies every file against the archive's manifest.json, and only then lets hub
copy the folder into $HUB_HOME/modules (`hub install <folder>`). The hub home is prepared offline first.
"""
import os
import sys
import tempfile

from paddle_electra.errors import command
from paddle_electra.hub.home import prepare_hub_home, safe_extract, verify_manifest
from paddle_electra.runconfig import ArgumentParser


def install(archive, hub_home=None):
    """Check, extract, verify and install `archive`; return the installed module's folder."""
    home = prepare_hub_home(hub_home)
    staging_root = os.path.join(home, "tmp")
    os.makedirs(staging_root, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="install-", dir=staging_root) as staging:
        folder = safe_extract(archive, staging)
        verify_manifest(folder)
        from paddlehub.module.manager import LocalModuleManager
        module_cls = LocalModuleManager().install(directory=folder)
    return module_cls.directory


@command
def main(argv=None):
    parser = ArgumentParser(prog="python -m modules.install", description=__doc__.splitlines()[0])
    parser.add_argument("archive", help="module archive written by `python -m converters package`")
    parser.add_argument("--hub-home", default=None, help="PaddleHub home (default: $HUB_HOME, else ./.paddlehub)")
    args = parser.parse_args(argv)
    directory = install(args.archive, args.hub_home)
    print(f"installed {os.path.basename(directory)} into {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
