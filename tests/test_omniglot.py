"""Omniglot loader: counts, splits, rotations, the zip path, checksums and the download."""

from __future__ import annotations

import functools
import http.server
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import omniglot
from bench.errors import MetabenchError


@pytest.fixture(scope="module")
def raw(data_root):
    return omniglot.load_all(data_root)


def test_counts(raw):
    assert raw.n_background == 964
    assert raw.ink.shape == (964 + 659, 20, 28, 28)
    assert raw.ink.dtype == np.uint8
    assert len(set(raw.names)) == 1623
    # ink is high on strokes: a small fraction of each image
    assert 0.02 < (raw.ink > 127).mean() < 0.2


@pytest.mark.parametrize("split", ["vinyals", "lake"])
def test_split_sizes_and_disjointness(raw, split):
    source = omniglot.OmniglotSource(raw, split)
    sizes = {part: len(rows) for part, rows in source.parts.items()}
    assert sizes == omniglot.SPLIT_SIZES[split]
    chars = {part: set(rows[:, 0].tolist()) for part, rows in source.parts.items()}
    assert not chars["train"] & chars["test"] and not chars["val"] & chars["test"]
    assert not chars["train"] & chars["val"]
    assert all(
        np.array_equal(np.bincount(rows[:, 1]), [len(rows) // 4] * 4)
        for rows in source.parts.values()
    )


def test_rotations_are_classes(raw):
    source = omniglot.OmniglotSource(raw, "vinyals")
    rows = source.parts["train"]
    char = rows[0, 0]
    by_rot = {int(k): i for i, (c, k) in enumerate(rows) if c == char}
    assert sorted(by_rot) == [0, 1, 2, 3]
    samples = np.array([[0, 1]])
    upright = source.gather("train", np.array([by_rot[0]]), samples)
    for k in (1, 2, 3):
        rotated = source.gather("train", np.array([by_rot[k]]), samples)
        assert torch.equal(rotated, torch.rot90(upright, k, dims=(-2, -1)))
    assert upright.shape == (1, 2, 1, 28, 28) and upright.max() <= 1.0


def make_archive(folder: Path, name: str, n_chars: int = 2) -> Path:
    """A tiny archive in the official layout: images_<part>/<Alphabet>/<charNN>/<id>_<NN>.png,
    1-bit PNGs with white = 1 and a vertical stroke whose column encodes the character."""
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for c in range(n_chars):
            for d in range(1, 21):
                pixels = np.ones((105, 105), dtype=bool)
                pixels[10:90, 20 + 30 * c : 30 + 30 * c] = False  # ink
                buf = _png(pixels)
                zf.writestr(f"{name}/Alpha/character{c + 1:02d}/{c + 1:04d}_{d:02d}.png", buf)
    return path


def _png(pixels: np.ndarray) -> bytes:
    import io

    out = io.BytesIO()
    Image.fromarray(pixels).convert("1").save(out, format="PNG")
    return out.getvalue()


def test_zip_path_with_valid_checksum(tmp_path, monkeypatch):
    path = make_archive(tmp_path, "images_background")
    monkeypatch.setitem(omniglot.ARCHIVE_MD5, "images_background", omniglot.md5sum(path))
    raw = omniglot.read_archive(tmp_path, "images_background")
    assert raw.ink.shape == (2, 20, 28, 28)
    assert raw.names == ["Alpha/character01", "Alpha/character02"]
    # the stroke of character 2 lies right of character 1's
    col = raw.ink.mean(axis=(1, 2))
    assert col[0].argmax() < col[1].argmax()


def test_zip_checksum_mismatch_is_a_clear_error(tmp_path):
    make_archive(tmp_path, "images_background")  # its MD5 is not the published one
    with pytest.raises(MetabenchError) as info:
        omniglot.read_archive(tmp_path, "images_background")
    message = str(info.value)
    assert "images_background.zip" in message and "MD5" in message
    assert "--data-dir" in message and "METABENCH_DATA" in message


@pytest.fixture
def loopback_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_download_verifies_md5(tmp_path, monkeypatch, loopback_server):
    served, url = loopback_server
    for name in omniglot.PARTS_FILES:
        path = make_archive(served, name)
        monkeypatch.setitem(omniglot.ARCHIVE_MD5, name, omniglot.md5sum(path))
    monkeypatch.setattr(omniglot, "URL_BASE", url)
    root = tmp_path / "root"
    raw = omniglot.load_all(root, cache_dir=tmp_path / "cache")
    assert raw.ink.shape == (4, 20, 28, 28) and raw.n_background == 2
    assert (root / "omniglot" / "images_background.zip").is_file()


def test_download_with_wrong_md5_is_rejected(tmp_path, monkeypatch, loopback_server):
    served, url = loopback_server
    make_archive(served, "images_background")
    monkeypatch.setattr(omniglot, "URL_BASE", url)
    with pytest.raises(MetabenchError, match="expected MD5 68d2efa1b9178cc56df9314c21c6e718"):
        omniglot.download("images_background", tmp_path / "omniglot")
    assert not (tmp_path / "omniglot" / "images_background.zip").exists()


def test_offline_download_says_how_to_point_at_data(tmp_path, monkeypatch):
    monkeypatch.setattr(omniglot, "URL_BASE", "http://127.0.0.1:9/")  # discard port: refused
    with pytest.raises(MetabenchError) as info:
        omniglot.download("images_background", tmp_path / "omniglot")
    assert "METABENCH_DATA" in str(info.value) and "--data-dir" in str(info.value)
