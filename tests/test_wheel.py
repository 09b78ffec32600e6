"""A non-editable install works: `pip wheel .` ships the suites and the Omniglot split lists,
and metabench installed from the wheel into a fresh venv, run outside the checkout, lists
the suites and completes a smoke run.

No network: the wheel is built without build isolation (this venv's setuptools), and the
fresh venv reuses this venv's site-packages for torch and the other dependencies (through
a .pth file) while metabench itself comes from the wheel alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

from bench.suite import tomllib

REPO = Path(__file__).resolve().parent.parent
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "reports", "*.egg-info", "__pycache__", ".*_cache"
)


def sh(*args: str | Path, cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout + done.stderr


def test_packages_list_names_every_package() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_packages(str(REPO), include=["bench", "bench.*"]))
    assert set(config["packages"]) == found | {"bench.suites"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(REPO, tmp / "src", ignore=IGNORED)
    log = sh(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "-w", tmp / "dist", tmp / "src", cwd=tmp,
    )  # fmt: skip
    assert "deprecated" not in log.lower(), log  # e.g. the license table form
    (path,) = (tmp / "dist").glob("metabench-*.whl")
    return path


def test_wheel_ships_suites_split_lists_and_templates(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    suites = {f"bench/suites/{p.name}" for p in (REPO / "suites").glob("*.toml")}
    assert suites and suites <= names
    splits = {f"bench/data/splits/omniglot_vinyals/{p}.txt" for p in ("train", "val", "test")}
    assert splits <= names
    assert "bench/report/templates/report.html.j2" in names
    (license,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert "MIT License" in zipfile.ZipFile(wheel).read(license).decode()


def test_installed_wheel_lists_suites_and_runs_outside_the_checkout(wheel, tmp_path) -> None:
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                   cwd=tmp_path).strip())  # fmt: skip
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
       wheel, cwd=tmp_path)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "METABENCH_SUITES")}
    where = sh(python, "-c", "import bench.suite as s; print(s.__file__); print(s.SUITES_DIR)",
               cwd=tmp_path, env=env).split()  # fmt: skip
    assert all(Path(p).is_relative_to(venv) for p in where), where
    listed = sh(venv / "bin" / "metabench", "list", cwd=tmp_path, env=env)
    assert all(p.stem in listed for p in (REPO / "suites").glob("*.toml")), listed
    # the Omniglot split lists load from the installed package
    sh(python, "-c", "from bench.data import omniglot as o; "
       "names = sorted({l.rsplit('/', 1)[0] for p in ('train', 'val', 'test') "
       "for l in (o.SPLIT_DIR / f'{p}.txt').read_text().split()}); "
       "assert len(o.vinyals_parts(names)['test']) == o.SPLIT_SIZES['vinyals']['test']",
       cwd=tmp_path, env=env)  # fmt: skip
    out = tmp_path / "run"
    sh(venv / "bin" / "metabench", "run", "sinusoid-5shot", "--profile", "smoke", "--methods",
       "scratch", "--seeds", "0", "--out", out, "--no-progress", cwd=tmp_path, env=env)  # fmt: skip
    assert (out / "summary.csv").is_file() and (out / "ledger.sqlite").is_file()
