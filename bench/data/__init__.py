"""Datasets and the episode sampler.

A dataset is a *task source* registered by name in `DATASETS`. Classification sources expose
per-class sample counts and a `gather` of images; regression sources draw a whole task from a
generator. The sampler (`episodes.py`) turns (suite, part, seed, index) into an episode.
A dataset read from files has `prepare(root, fetch)`: `prepare_datasets` calls it once per
run, before any cell, so that a missing or corrupt file is one message, not one per cell.
Out-of-tree datasets register through the `metabench.datasets` entry point group.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.data.download import fetch_verified, refuse_download
from bench.errors import MetabenchError
from bench.registry import Registry

DATASETS: Registry = Registry("dataset")

ENV_DATA = "METABENCH_DATA"
ENTRY_POINTS = "metabench.datasets"


def default_cache_dir() -> Path:
    """The user cache directory ($XDG_CACHE_HOME/metabench or ~/.cache/metabench)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "metabench"


def resolve_data_root(flag: str | os.PathLike | None = None) -> Path:
    """The data root: --data-dir flag, then $METABENCH_DATA, then the user cache.

    The root holds one folder per dataset (omniglot/, banking77/, ...).
    """
    if flag:
        root = Path(flag)
        where = "--data-dir"
    elif os.environ.get(ENV_DATA):
        root = Path(os.environ[ENV_DATA])
        where = f"${ENV_DATA}"
    else:
        return default_cache_dir() / "data"
    if not root.is_dir():
        raise MetabenchError(f"{where}: expected an existing directory, found {str(root)!r}")
    return root


def data_root_origin(flag: str | os.PathLike | None = None) -> str:
    """Where `resolve_data_root(flag)` took the root from, for messages."""
    if flag:
        return "--data-dir"
    if os.environ.get(ENV_DATA):
        return f"${ENV_DATA}"
    return f"the default cache (neither --data-dir nor ${ENV_DATA} is set)"


def prepare_datasets(
    needed: dict[str, list[str]], root: Path, *, download: bool = True, origin: str = ""
) -> None:
    """Find, verify and (if `download`) fetch every dataset a run needs, before any cell.

    needed: dataset name -> the suites that use it. Raises one MetabenchError naming every
    dataset that failed, with its suites, the folder searched (and where the root came
    from) and the fix. A failed download leaves no file or folder behind.
    """
    fetch = fetch_verified if download else refuse_download
    problems = []
    for name in sorted(needed):
        prepare = getattr(DATASETS.get(name), "prepare", None)
        if prepare is None:  # generated on the fly (sinusoid, dynamics): nothing to find
            continue
        try:
            prepare(Path(root), fetch)
        except MetabenchError as e:
            suites = ", ".join(sorted(set(needed[name])))
            source = f"; data root {root} from {origin}" if origin else ""
            problems.append(f"dataset {name!r} (for {suites}{source}): {e}")
    if problems:
        raise MetabenchError(" | ".join(problems))


def _register_builtin() -> None:
    # Imported for their registration side effect.
    from bench.data import dynamics, omniglot, sinusoid, text  # noqa: F401


_register_builtin()
DATASETS.load_entry_points(ENTRY_POINTS)
