"""The run folder while metabench writes it: one run at a time, and a report that is
replaced whole or not at all.

- `RunLock`: an exclusive lock (fcntl.flock on `.metabench.lock` inside the folder) held
  for the whole run, so that a second run into the same folder stops at once (exit 2,
  naming the process that holds it) instead of computing every cell a second time. The
  lock dies with its process (kill -9 included): a stale lock file is never in the way.
- `publish_report`: the report is written into a hidden folder beside its files and moved
  into place file by file, index.html last; Ctrl-C while it is written leaves the earlier
  report as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from bench.errors import MetabenchError
from bench.store import LOCK_NAME, Ledger

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows: no lock)
    fcntl = None


def lock_holder(run_dir: Path, flag: str = "--out") -> None:
    """Raise MetabenchError when another process holds `run_dir`'s lock (creates nothing)."""
    path = Path(run_dir) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raise busy(run_dir, f.read().strip(), flag) from None


def busy(run_dir: Path, holder: str, flag: str) -> MetabenchError:
    where = f"{flag} {run_dir}" if flag else str(run_dir)
    return MetabenchError(
        f"{where}: expected a folder no other run is writing, found one in use by "
        f"another metabench run ({holder or 'holder unknown'}); wait for it to end, or choose "
        "another folder"
    )


class RunLock:
    """`with RunLock(run_dir, command):` creates the folder and holds its lock."""

    def __init__(self, run_dir: Path, command: str, flag: str = "") -> None:
        self.run_dir, self.command, self.flag = Path(run_dir), command, flag
        self.file = None

    def __enter__(self) -> RunLock:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.file = open(self.run_dir / LOCK_NAME, "a+")  # held until __exit__
        except OSError as e:
            raise MetabenchError(f"{self.run_dir}: could not create the run folder ({e})") from None
        if fcntl is None:
            return self
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip()
            self.file.close()
            raise busy(self.run_dir, holder, self.flag) from None
        self.file.seek(0)
        self.file.truncate()
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        host = socket.gethostname()
        self.file.write(f"pid {os.getpid()} on {host} since {since}: {self.command}")
        self.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()  # releases the lock; the file stays (see the module doc)


def publish_report(run_dir: Path, out: Path | None = None, energy_scope: str = "node") -> Path:
    """bench.report.writer.write_report into `out` (default: run_dir), staged in a hidden
    folder inside `out` and moved into place at the end (index.html last); returns the path
    of index.html. Raises what write_report raises; a staged folder never stays behind."""
    from bench.report.writer import write_report

    Ledger(run_dir).require()  # before `out` is created
    out = Path(out or run_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    except OSError as e:
        raise MetabenchError(f"--out {out}: could not write the report there ({e})") from None
    try:
        write_report(run_dir, staging, energy_scope)
        for f in sorted(staging.iterdir(), key=lambda p: p.name == "index.html"):
            if f.is_dir() and (out / f.name).is_dir():  # os.replace cannot replace a folder
                shutil.rmtree(out / f.name)
            os.replace(f, out / f.name)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
    return out / "index.html"
