"""Checksums and verified downloads, shared by every dataset that fetches official files.

A dataset's `prepare(root, fetch)` finds its files before any cell runs and calls `fetch`
(`fetch_verified`, or `refuse_download` under `--no-download`) for a missing one. A failed
download leaves nothing behind: no partial file, no folder it created.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.errors import MetabenchError

DOWNLOAD_TIMEOUT_S = 60
# The opener of download URLs (tests replace it: no network in tests).
urlopen = urllib.request.urlopen

Fetch = Callable[[str, Path, str, str, str, str], Path]


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest ("md5", "sha256", ...) of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(path: Path) -> dict[str, str]:
    """`sha256sum` output -> {filename: sum}; empty when the file is missing."""
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, filename = line.split(maxsplit=1)
            sums[filename.lstrip("*")] = digest
    return sums


def fetch_verified(
    url: str, target: Path, algorithm: str, expected: str, missing: str, how_to_fix: str
) -> Path:
    """Download url to target (via a temporary file beside it), kept only if its digest
    matches. `missing` says what was looked for locally; both go into the error. On any
    failure the folders this call created are removed again."""
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    tmp_path: Path | None = None
    try:
        with urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
                tmp_path = Path(tmp.name)
                shutil.copyfileobj(response, tmp)
        if (found := file_digest(tmp_path, algorithm)) != expected:
            raise MetabenchError(
                f"{url}: expected {algorithm.upper().replace('SHA', 'SHA-')} {expected}, "
                f"found {found}; {how_to_fix}"
            )
        return tmp_path.replace(target)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as e:
        remove(tmp_path, created)
        raise MetabenchError(
            f"{target.parent}: expected {missing}, found none, and the download of {url} "
            f"failed ({e}); {how_to_fix}"
        ) from None
    except BaseException:  # a checksum mismatch, Ctrl-C: nothing half-written stays
        remove(tmp_path, created)
        raise


def refuse_download(
    url: str, target: Path, algorithm: str, expected: str, missing: str, how_to_fix: str
) -> Path:
    """The `fetch` of `--no-download`: a missing file is an error, nothing is fetched."""
    raise MetabenchError(
        f"{target.parent}: expected {missing}, found none (downloads are off: --no-download); "
        f"{how_to_fix}"
    )


def remove(tmp_path: Path | None, created: list[Path]) -> None:
    """Delete a partial download and the (then empty) folders made for it, innermost first."""
    if tmp_path is not None:
        tmp_path.unlink(missing_ok=True)
    for folder in created:
        with contextlib.suppress(OSError):
            folder.rmdir()
