"""Write modules/<package>/module.py (+ __init__.py) for every release in paddle_electra.releases, from the
packager's template (paddle_electra/hub/module.py.tmpl, paddle_electra.hub.package.render_release).

    python -m modules.generate            # (re)write the folders
    python -m modules.generate --check    # exit 1 if a committed file differs from what the template gives
"""
import os
import sys

from paddle_electra.fileio import write_text
from paddle_electra.hub.package import INIT_TEXT, render_release
from paddle_electra.releases import RELEASES
from paddle_electra.errors import command
from paddle_electra.runconfig import ArgumentParser

from . import MODULES_DIR


def expected_files(root=MODULES_DIR) -> dict:
    """{path: text} of every generated file."""
    files = {}
    for release in RELEASES:
        folder = os.path.join(root, release.package_name)
        files[os.path.join(folder, "module.py")] = render_release(release.name)
        files[os.path.join(folder, "__init__.py")] = INIT_TEXT.format(name=release.name)
    return files


@command
def main(argv=None):
    parser = ArgumentParser(prog="python -m modules.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on any difference")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected_files().items():
        try:
            with open(path, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            write_text(path, text)
    verb = "differ from the template" if args.check else "written"
    for path in stale:
        print(f"{os.path.relpath(path)}: {verb}")
    if not stale:
        print(f"{len(RELEASES)} modules up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
