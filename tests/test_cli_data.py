"""Datasets are found (verified, downloaded where allowed) once, before any cell: a missing
or corrupt dataset is one message naming it, the folder searched and the fix, exit 2, and
nothing is created. No network here: the opener of downloads is replaced."""

from __future__ import annotations

import hashlib
import io
import shutil
import urllib.error

import pytest

from bench import cli
from bench.data import download
from bench.errors import MetabenchError


class Opener:
    """Counts download attempts; fails like a machine without network, or serves bytes."""

    def __init__(self, payload: bytes | None = None) -> None:
        self.payload, self.urls = payload, []

    def __call__(self, url: str, timeout: float):
        self.urls.append(url)
        if self.payload is None:
            raise urllib.error.URLError("no network in tests")
        return io.BytesIO(self.payload)


@pytest.fixture
def opener(monkeypatch) -> Opener:
    fake = Opener()
    monkeypatch.setattr(download, "urlopen", fake)
    return fake


def test_empty_data_root_is_one_message_and_leaves_nothing(
    tmp_path, monkeypatch, opener, capfd
) -> None:
    root, out = tmp_path / "empty", tmp_path / "out"
    root.mkdir()
    monkeypatch.setenv("METABENCH_DATA", str(root))
    argv = ["run", "omniglot-5w1s", "--profile", "smoke", "--seeds", "0,1,2", "--out", str(out)]
    assert cli.main(argv) == 2
    err = capfd.readouterr().err
    assert err.startswith("metabench: error: dataset 'omniglot'") and err.count("\n") == 1
    assert str(root / "omniglot") in err  # the folder searched
    assert "$METABENCH_DATA" in err and "--data-dir" in err  # where the root came from, the fix
    assert "Traceback" not in err
    assert len(opener.urls) == 1  # one attempt for the run, not one per cell
    assert list(root.iterdir()) == [] and not out.exists()  # no empty omniglot/, no run


def test_no_download_never_touches_the_network(tmp_path, opener, capfd) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    argv = ["run", "banking77-5w1s", "omniglot-5w1s", "--profile", "smoke"]
    argv += ["--data-dir", str(root), "--no-download", "--out", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    err = capfd.readouterr().err
    assert "dataset 'banking77'" in err and "--no-download" in err
    assert "dataset 'omniglot'" in err  # every missing dataset, in the one paragraph
    assert err.count("\n") == 1
    assert opener.urls == [] and list(root.iterdir()) == []


def test_corrupt_file_is_named_before_any_cell(tmp_path, data_root, opener, capfd) -> None:
    root = tmp_path / "data"
    shutil.copytree(data_root / "banking77", root / "banking77")
    (root / "banking77" / "test.csv").chmod(0o644)
    with open(root / "banking77" / "test.csv", "a") as f:
        f.write("a changed line\n")
    out = tmp_path / "out"
    argv = ["run", "banking77-5w1s", "--profile", "smoke", "--data-dir", str(root)]
    assert cli.main([*argv, "--out", str(out)]) == 2
    err = capfd.readouterr().err
    assert str(root / "banking77" / "test.csv") in err and "SHA-256" in err
    assert not out.exists() and opener.urls == []


def test_fetch_keeps_a_verified_file_and_removes_what_a_failure_created(
    tmp_path, monkeypatch
) -> None:
    payload = b"official bytes"
    good = hashlib.sha256(payload).hexdigest()
    monkeypatch.setattr(download, "urlopen", Opener(payload))
    target = tmp_path / "root" / "set" / "file.csv"
    args = ("https://example.org/file.csv", target, "sha256")
    with pytest.raises(MetabenchError, match="expected SHA-256"):
        download.fetch_verified(*args, "0" * 64, "file.csv", "fix it")
    assert list(tmp_path.iterdir()) == []  # neither root/ nor root/set/ stays
    assert download.fetch_verified(*args, good, "file.csv", "fix it") == target
    assert target.read_bytes() == payload and len(list(target.parent.iterdir())) == 1


@pytest.mark.parametrize("manifest", [False, True])
def test_corrupt_omniglot_npz_is_named_before_any_cell(
    tmp_path, data_root, opener, capfd, manifest
) -> None:
    """Without a MANIFEST.sha256 the npz is opened (its zip CRCs), with one it is hashed."""
    folder = tmp_path / "data" / "omniglot"
    folder.mkdir(parents=True)
    for name in ("images_background.npz", "images_evaluation.npz", "MANIFEST.sha256"):
        if name.endswith(".npz") or manifest:
            shutil.copyfile(data_root / "omniglot" / name, folder / name)
    bad = folder / "images_evaluation.npz"
    data = bytearray(bad.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = b"x" * 64  # inside the packed images
    bad.write_bytes(bytes(data))
    out = tmp_path / "out"
    argv = ["run", "omniglot-5w1s", "--profile", "smoke", "--data-dir", str(folder.parent)]
    assert cli.main([*argv, "--out", str(out), "--methods", "protonet"]) == 2
    err = capfd.readouterr().err
    assert str(bad) in err and err.count("\n") == 1 and "Traceback" not in err
    assert ("SHA256" if manifest else "damaged") in err
    assert not out.exists() and opener.urls == []
