"""PaddleHub set-up that stays offline and local, and the safety checks for module archives.

PaddleHub reads HUB_HOME once, at import, and on module load / install / serving starts a background request to its
server (module name or local path, versions, an id) unless `server` in `$HUB_HOME/conf/config.yaml` points elsewhere.
`prepare_hub_home()` picks the hub home (an explicit path, else $HUB_HOME if the user set one, else `./.paddlehub`
in the current directory, never the user's global ~/.paddlehub unless asked) and points the server at a closed
loopback port, so every call hub makes fails at once without leaving the machine.

`hub install x.tar.gz` extracts with tarfile without any member check (a `../` or absolute member, or a symlink,
writes outside the hub home) and pip-installs a bundled requirements.txt. `check_archive` refuses all of those and
`safe_extract` extracts only regular files and folders below the destination; `python -m modules.install ARCHIVE` runs
both, verifies the archive's manifest.json checksums, and only then hands the extracted folder to hub.
"""
from __future__ import annotations

import gzip
import os
import posixpath
import stat
import sys
import tarfile
import zipfile
import zlib

from ..errors import ElectraError
from .. import fileio

OFFLINE_SERVER = "http://127.0.0.1:9"  # port 9 (discard): nothing listens, a connection is refused at once
MANIFEST_NAME, MODULE_FORMAT = fileio.MANIFEST_NAME, "paddle-electra-module/1"
# hub pip-installs this file when it is in a module folder; our modules never need it
FORBIDDEN_NAMES = ("requirements.txt",)
MAX_MEMBERS = 10_000
MAX_TOTAL_BYTES = 8 << 30  # the large model is ~1.3 GB of fp32 weights; this bounds a decompression bomb


class ArchiveError(ElectraError):
    """A module archive is unsafe or malformed (the message names the archive and the member)."""


def default_hub_home() -> str:
    """$HUB_HOME when the user set it, else ./.paddlehub (project-local)."""
    return os.environ.get("HUB_HOME") or os.path.join(os.getcwd(), ".paddlehub")


def _same_dir(a, b) -> bool:
    return os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b))


def write_offline_config(hub_home, server=OFFLINE_SERVER) -> str:
    """Set `server` in $HUB_HOME/conf/config.yaml (other keys kept), atomically; return the file's path."""
    import yaml
    path = os.path.join(hub_home, "conf", "config.yaml")
    data = {}
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError):
            data = {}
        if not isinstance(data, dict):
            data = {}
    data["server"] = server
    fileio.write_text(path, yaml.safe_dump(data, default_flow_style=False))
    return path


def prepare_hub_home(path=None, server=OFFLINE_SERVER) -> str:
    """Point PaddleHub at `path` (default: see `default_hub_home`) with its server set to a closed loopback port.

    Call it before paddlehub is imported: hub reads HUB_HOME once, at import. If paddlehub is already imported with
    the same home, the running hub's server setting is switched too; with a different home, ElectraError."""
    home = os.path.abspath(os.path.expanduser(os.fspath(path) if path is not None else default_hub_home()))
    if os.path.exists(home) and not os.path.isdir(home):
        raise ElectraError(f"{home}: HUB_HOME must be a directory")
    if "paddlehub" in sys.modules or "paddlehub.env" in sys.modules:
        import paddlehub.env as hub_env
        if not _same_dir(hub_env.HUB_HOME, home):
            raise ElectraError(f"paddlehub is already imported with HUB_HOME={hub_env.HUB_HOME}, so it cannot use "
                               f"{home}: call prepare_hub_home() before importing paddlehub (or set HUB_HOME)")
    os.makedirs(os.path.join(home, "conf"), exist_ok=True)
    os.environ["HUB_HOME"] = home
    os.environ.setdefault("PPNLP_HOME", os.path.join(home, "ppnlp"))
    # paddlehub imports paddlenlp, which imports HF datasets/huggingface_hub: keep them off the network as well
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    write_offline_config(home, server)
    if "paddlehub.config" in sys.modules:
        _switch_running_hub(server)
    return home


def _switch_running_hub(server):
    """Apply the server setting to an already imported paddlehub (its config was read at import)."""
    from paddlehub.config import config
    config.data.server = server
    server_module = sys.modules.get("paddlehub.server.server")
    if server_module is not None:
        server_module.module_server.remove_source(key="default_hub_server")
        server_module.module_server.add_source(server, source_type="server", key="default_hub_server")


def hub_server_setting(hub_home) -> str | None:
    """The `server` value in $HUB_HOME/conf/config.yaml, or None if the file or key is absent."""
    import yaml
    path = os.path.join(hub_home, "conf", "config.yaml")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return data.get("server") if isinstance(data, dict) else None


# ---- archives ---------------------------------------------------------------------------------------------------
def _clean(name):
    """Member name as a normalised relative posix path ("." for the archive root itself)."""
    return posixpath.normpath(name.replace("\\", "/"))


# what reading a damaged archive raises besides ArchiveError's own checks
_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, gzip.BadGzipFile, EOFError, zlib.error)


def _members(path):
    """(name, kind, size) of every member; kind is 'file', 'dir', 'symlink', 'hardlink' or 'special'."""
    if zipfile.is_zipfile(path):
        try:
            archive = zipfile.ZipFile(path)
        except _READ_ERRORS as err:
            raise ArchiveError(f"{path}: corrupt zip archive ({err})") from None
        with archive:
            for info in archive.infolist():
                file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip tool stored no unix mode
                if file_type == stat.S_IFLNK:
                    kind = "symlink"
                elif info.is_dir() or file_type == stat.S_IFDIR:
                    kind = "dir"
                elif file_type not in (0, stat.S_IFREG):
                    kind = "special"
                else:
                    kind = "file"
                yield info.filename, kind, info.file_size
        return
    try:
        archive = tarfile.open(path, "r:*")
    except (OSError,) + _READ_ERRORS as err:  # a gzip stream cut short: EOFError
        raise ArchiveError(f"{path}: not a readable tar or zip archive ({err})") from None
    with archive:
        try:
            for info in archive:
                kind = ("file" if info.isreg() else "dir" if info.isdir() else "symlink" if info.issym() else
                        "hardlink" if info.islnk() else "special")
                yield info.name, kind, info.size
        except (OSError,) + _READ_ERRORS as err:
            raise ArchiveError(f"{path}: corrupt or truncated archive ({err})") from None


def _check_checksums(path):
    """Refuse a compressed archive whose own checksums fail: tarfile stops reading a .tar.gz at the tar end marker and
    never reaches gzip's trailer (CRC-32 and length of the whole stream), and ZipFile checks a member's CRC only when
    it is read, so damage there would otherwise pass unnoticed."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except _READ_ERRORS as err:
            raise ArchiveError(f"{path}: corrupt zip archive ({err})") from None
        if bad is not None:
            raise ArchiveError(f"{path}: member {bad!r} fails its CRC check: damaged archive")
        return
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 20):
                pass
    except (OSError,) + _READ_ERRORS as err:
        raise ArchiveError(f"{path}: damaged gzip stream ({err})") from None


def check_archive(path, max_members=MAX_MEMBERS, max_total_bytes=MAX_TOTAL_BYTES) -> dict:
    """Refuse an archive whose checksums fail, with absolute or `..` member paths, links, device/fifo members, a
    bundled requirements.txt, several top-level folders or no module.py; return {'top': folder name, 'files': [names],
    'bytes': total}."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ArchiveError(f"{path}: archive not found")
    _check_checksums(path)
    tops, files, seen, total, count = set(), [], set(), 0, 0
    for name, kind, size in _members(path):
        count += 1
        if count > max_members:
            raise ArchiveError(f"{path}: more than {max_members} members")
        problem = fileio.member_problem(name)
        if problem:
            raise ArchiveError(f"{path}: member {name!r} refused: {problem}")
        if kind in ("symlink", "hardlink"):
            raise ArchiveError(f"{path}: member {name!r} refused: {kind} (module archives hold regular files only)")
        if kind == "special":
            raise ArchiveError(f"{path}: member {name!r} refused: device, fifo or other special file")
        clean = _clean(name)
        if clean == ".":
            continue
        parts = clean.split("/")
        if parts[-1] in FORBIDDEN_NAMES:
            raise ArchiveError(f"{path}: member {name!r} refused: hub would pip-install a bundled {parts[-1]}")
        tops.add(parts[0])
        if kind == "file":
            if clean in seen:
                raise ArchiveError(f"{path}: member {name!r} appears twice")
            seen.add(clean)
            if len(parts) == 1:
                raise ArchiveError(f"{path}: member {name!r} is outside the module folder (hub needs one top-level "
                                   f"folder holding module.py)")
            files.append(clean)
            total += size
            if total > max_total_bytes:
                raise ArchiveError(f"{path}: members add up to more than {max_total_bytes} bytes")
    for file_name in files:  # a file that is also the folder of another file cannot be extracted
        parent = file_name.rsplit("/", 1)[0]
        while "/" in parent:
            if parent in seen:
                raise ArchiveError(f"{path}: {parent!r} is both a file and a folder")
            parent = parent.rsplit("/", 1)[0]
    if len(tops) != 1:
        raise ArchiveError(f"{path}: expected one top-level folder, found {sorted(tops) or 'none'}")
    top = tops.pop()
    if f"{top}/module.py" not in files:
        raise ArchiveError(f"{path}: {top}/module.py missing: not a PaddleHub module archive")
    return {"top": top, "files": files, "bytes": total}


def safe_extract(path, destination) -> str:
    """check_archive, then write each regular file below `destination` (no links, no modes beyond rw-r--r--);
    return the extracted module folder."""
    info = check_archive(path)
    root = os.path.realpath(destination)
    os.makedirs(root, exist_ok=True)

    def target(name):
        out = fileio.member_target(root, name)
        if out is None:
            raise ArchiveError(f"{path}: member {name!r} would be written outside {root}")
        return out

    def copy(stream, name):
        out = target(name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "xb") as f:  # "x": never follow or overwrite something already there
            while True:
                block = stream.read(1 << 20)
                if not block:
                    break
                f.write(block)
        os.chmod(out, 0o644)

    wanted = set(info["files"])
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in archive.infolist():
                    name = _clean(member.filename)
                    if name in wanted and not member.is_dir():
                        with archive.open(member) as stream:
                            copy(stream, name)
        else:
            with tarfile.open(path, "r:*") as archive:
                for member in archive:
                    name = _clean(member.name)
                    if name in wanted and member.isreg():
                        copy(archive.extractfile(member), name)
    except _READ_ERRORS as err:  # member data that fails its CRC or ends early
        raise ArchiveError(f"{path}: corrupt or truncated archive ({err})") from None
    return os.path.join(root, info["top"])


# ---- manifest ---------------------------------------------------------------------------------------------------
def write_manifest(folder) -> str:
    """manifest.json in `folder` (fileio's format): sha256 and size of every other file."""
    return fileio.write_manifest(folder, format=MODULE_FORMAT)


def verify_manifest(folder):
    """Check every file listed in manifest.json (present, same size and sha256) and that no file is unlisted."""
    if not os.path.exists(os.path.join(folder, MANIFEST_NAME)):
        raise ArchiveError(f"{folder}: no {MANIFEST_NAME}: not an archive written by `python -m converters package`")
    return fileio.verify_manifest(folder, ArchiveError, exhaustive=True)
