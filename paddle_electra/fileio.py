"""Atomic file writes and checksums: a file the project writes is either complete or absent."""
import contextlib
import hashlib
import json
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp path in the destination's folder; rename it onto `path` only if the block succeeds."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a saved model should have normal file permissions
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # data must be on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fsync_dir(path):
    """Make a folder's entries (a rename into it) durable; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root):
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(folder)


def staged_name(final) -> str:
    """The staging folder of `final` in this process: .tmp-<name>-<pid> beside it."""
    parent, name = os.path.split(os.path.abspath(os.fspath(final)))
    return os.path.join(parent, f".tmp-{name}-{os.getpid()}")


@contextlib.contextmanager
def atomic_folder(final):
    """Yield an empty staging folder beside `final` (.tmp-<name>-<pid>); when the block succeeds its files are
    fsynced and it replaces `final` whole, else it is deleted. Readers see the old folder or the new one, never a mix.
    Used for every folder the project writes: checkpoints, model directories, data shards, conversions. A kill
    between the two renames of a replacement leaves `final` absent and the old one as .old-<name>-<pid>:
    recover_folder(final) puts it back."""
    final = os.path.abspath(os.fspath(final))
    parent, name = os.path.split(final)
    os.makedirs(parent, exist_ok=True)
    tmp = staged_name(final)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
        _fsync_tree(tmp)
        if os.path.lexists(final):
            old = os.path.join(parent, f".old-{name}-{os.getpid()}")
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_folder(final) -> None:
    """Undo what a kill inside atomic_folder left for `final`: delete staging folders, and put a swapped-out old
    version back when `final` is missing (else delete it)."""
    final = os.path.abspath(os.fspath(final))
    parent, name = os.path.split(final)
    if not os.path.isdir(parent):
        return
    names = os.listdir(parent)
    for entry in names:
        if entry.startswith(f".tmp-{name}-"):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
    for entry in names:
        if entry.startswith(f".old-{name}-"):
            if not os.path.exists(final):
                os.rename(os.path.join(parent, entry), final)
            else:
                shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def read_bytes(path) -> bytes:
    """The whole file, or DataError naming it (missing, unreadable)."""
    from .errors import DataError
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except OSError as e:
        raise DataError(f"cannot read file: {e.strerror}", path=path) from None


def utf8_lines(path):
    """(line number, line) of a text file read as UTF-8 line by line (the line keeps its newline); bytes that do not
    decode are a DataError naming the file, the line and the byte."""
    from .errors import DataError
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"invalid UTF-8 at byte {e.start} of the line", path=path, line=number) from None


def read_json_file(path, what="JSON file", *, trailing_commas=False, require_object=True, error=None):
    """The parsed JSON of `path`, or one line naming the file (`error`, default ConfigError): not found, unreadable,
    not UTF-8, invalid JSON (with its line), not an object (unless `require_object` is false). `trailing_commas`
    tolerates a comma before } or ]: the official params_cmrc2018.json in Chinese-ELECTRA's README has one."""
    from .errors import ConfigError
    error = error or ConfigError
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: {what} is not UTF-8 ({e.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as first:
        try:
            if not trailing_commas:
                raise
            data = json.loads(_strip_trailing_commas(text))
        except json.JSONDecodeError:
            raise error(f"{path}: line {first.lineno}: invalid JSON ({first.msg})") from None
    if require_object and not isinstance(data, dict):
        raise error(f"{path}: {what} must be a JSON object, got {type(data).__name__}")
    return data


def _strip_trailing_commas(text):
    """Remove commas directly before a closing bracket, outside strings."""
    out, in_string, escaped = [], False, False
    for i, char in enumerate(text):
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char == ",":
            rest = text[i + 1:].lstrip()
            if rest[:1] in ("}", "]"):
                continue
        out.append(char)
    return "".join(out)


def write_bytes(path, data: bytes):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path, text: str):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj, indent=2):
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


def save_figure(fig, path, dpi=100) -> str:
    """A matplotlib figure saved as the PNG `path` through atomic_path, then closed; returns `path`."""
    import matplotlib.pyplot as plt
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return os.fspath(path)


def sha256_file(path, chunk=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# ---- manifest.json: the project's one checksum format ----------------------------------------------------------------
# {"files": {relative posix path: {"sha256", "bytes"}}, ...extra keys of the writer}. Pretraining checkpoints, epoch
# checkpoints, model directories and hub archives all carry one; a reader checks the files it is about to trust.
MANIFEST_NAME = "manifest.json"


def folder_files(folder) -> list:
    """Relative posix paths of every file below `folder`, sorted, without manifest.json and __pycache__."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), folder).replace(os.sep, "/")
            if rel != MANIFEST_NAME:
                found.append(rel)
    return sorted(found)


def _file_entry(path) -> dict:
    return {"sha256": sha256_file(path), "bytes": os.path.getsize(path)}


def write_manifest(folder, names=None, **extra) -> str:
    """Write `folder`/manifest.json with the checksum of each of `names` (default: every file below `folder`) and the
    writer's `extra` keys; return its path."""
    names = folder_files(folder) if names is None else sorted(names)
    path = os.path.join(folder, MANIFEST_NAME)
    write_json(path, {**extra, "files": {n: _file_entry(os.path.join(folder, n)) for n in names}})
    return path


def update_manifest(folder, names) -> str:
    """Add or refresh the entries of `names` in `folder`/manifest.json (created when absent): for writers that add
    files to a folder another writer started, e.g. a tokenizer saved beside a model."""
    path = os.path.join(folder, MANIFEST_NAME)
    manifest = read_manifest(folder) if os.path.exists(path) else {"files": {}}
    manifest["files"].update({n: _file_entry(os.path.join(folder, n)) for n in names})
    manifest["files"] = dict(sorted(manifest["files"].items()))
    write_json(path, manifest)
    return path


def read_manifest(folder, error=None) -> dict:
    """`folder`/manifest.json as a dict with a "files" mapping; `error` (default WeightsError) if missing or broken."""
    from .errors import WeightsError
    error = error or WeightsError
    path = os.path.join(folder, MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise error(f"{path}: missing") from None
    except (OSError, ValueError) as err:
        raise error(f"{path}: unreadable manifest ({err})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
        raise error(f"{path}: not a manifest (expected {{\"files\": {{path: {{\"sha256\", \"bytes\"}}}}}})")
    return manifest


def verify_manifest(folder, error=None, names=None, exhaustive=False) -> dict:
    """Check files of `folder` against its manifest.json (same size and sha256) and return the manifest. Every listed
    file is checked, or only those among `names`; `exhaustive` also refuses files the manifest does not list.
    Raises `error` (default WeightsError) naming the first bad file."""
    from .errors import WeightsError
    error = error or WeightsError
    manifest = read_manifest(folder, error)
    entries, path = manifest["files"], os.path.join(folder, MANIFEST_NAME)
    if exhaustive:
        unlisted = sorted(set(folder_files(folder)) - set(entries))
        if unlisted:
            raise error(f"{path}: files not in the manifest: {unlisted}")
    for rel, entry in entries.items():
        if names is not None and rel not in names:
            continue
        full = os.path.join(folder, rel)
        if not os.path.isfile(full):
            raise error(f"{full}: listed in {MANIFEST_NAME} but missing")
        if os.path.getsize(full) != entry.get("bytes") or sha256_file(full) != entry.get("sha256"):
            raise error(f"{full}: checksum mismatch with {MANIFEST_NAME}: its size or sha256 differs (corrupt, "
                        f"half-written or altered)")
    return manifest


# ---- archive member paths: the one set of rules for every extraction (hub module archives, release zips) ------------
def member_problem(name: str):
    """Why an archive member name is unsafe to extract (empty, NUL byte, absolute or drive path, '..'), or None."""
    if not name or "\x00" in name:
        return "empty name or NUL byte"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "path traversal ('..')"
    return None


def member_target(root: str, name: str):
    """Where member `name` lands below the real folder `root`, or None when links already on disk would take it
    outside (checked after member_problem, on the resolved path)."""
    out = os.path.realpath(os.path.join(root, name.replace("\\", "/")))
    return out if os.path.commonpath([out, root]) == root else None
