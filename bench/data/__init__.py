"""Datasets and the episode sampler.

A dataset is a *task source* registered by name in `DATASETS`. Classification sources expose
per-class sample counts and a `gather` of images; regression sources draw a whole task from a
generator. The sampler (`episodes.py`) turns (suite, part, seed, index) into an episode.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.errors import MetabenchError
from bench.registry import Registry

DATASETS: Registry = Registry("dataset")

ENV_DATA = "METABENCH_DATA"


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


def _register_builtin() -> None:
    # Imported for their registration side effect.
    from bench.data import dynamics, omniglot, sinusoid, text  # noqa: F401


_register_builtin()
