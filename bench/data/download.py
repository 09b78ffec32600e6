"""Checksums and verified downloads, shared by every dataset that fetches official files."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from bench.errors import MetabenchError


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest ("md5", "sha256", ...) of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_verified(
    url: str, target: Path, algorithm: str, expected: str, missing: str, how_to_fix: str
) -> Path:
    """Download url to target (via a temporary file beside it), kept only if its digest
    matches. `missing` says what was looked for locally; both go into the error."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with (
            urllib.request.urlopen(url, timeout=60) as response,
            tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp,
        ):
            shutil.copyfileobj(response, tmp)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise MetabenchError(
            f"{target.parent}: expected {missing}, found none, and the download of {url} "
            f"failed ({e}); {how_to_fix}"
        ) from None
    tmp_path = Path(tmp.name)
    if (found := file_digest(tmp_path, algorithm)) != expected:
        tmp_path.unlink()
        raise MetabenchError(
            f"{url}: expected {algorithm.upper().replace('SHA', 'SHA-')} {expected}, "
            f"found {found}; {how_to_fix}"
        )
    return tmp_path.replace(target)
