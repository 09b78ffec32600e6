"""Language domain: loaders, SHA-256 checks, downloads, splits, token episodes, learning."""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.data import DATASETS
from bench.data import text as text_mod
from bench.data.episodes import EpisodeSampler, Shape
from bench.energy.base import TimeMeter
from bench.errors import MetabenchError
from bench.methods import TaskSpec
from bench.methods.backbones import TextEncoder, backbone_for
from bench.run.grid import Cell
from bench.run.harness import run_cell
from bench.suite import load_suite

DATA = Path("/work/shared/data")
SUITES = Path(__file__).parent.parent / "suites"
needs_data = pytest.mark.skipif(
    not (DATA / "banking77").is_dir() or not (DATA / "clinc150").is_dir(),
    reason=f"BANKING77 / CLINC150 not under {DATA}",
)


@needs_data
def test_banking77_counts() -> None:
    c = text_mod.load_corpus(DATA, "banking77")
    assert len(c.intents) == 77
    assert (len(c.texts["train"]), len(c.texts["test"])) == (10_003, 3_080)
    assert len(set(c.labels["train"])) == len(set(c.labels["test"])) == 77


@needs_data
def test_clinc150_counts_in_scope_only() -> None:
    c = text_mod.load_corpus(DATA, "clinc150")
    assert len(c.intents) == 150 and "oos" not in c.intents
    assert [len(c.texts[p]) for p in ("train", "val", "test")] == [15_000, 3_000, 4_500]


@needs_data
@pytest.mark.parametrize("name", ["banking77", "clinc150"])
def test_splits_are_class_disjoint_and_written_in_the_suites(name: str) -> None:
    c = text_mod.load_corpus(DATA, name)
    parts = text_mod.intent_split(c.intents, text_mod.SPLIT_SIZES[name])
    sets = {p: set(v) for p, v in parts.items()}
    assert not (
        sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"]
    )
    assert sets["train"] | sets["val"] | sets["test"] == set(c.intents)
    assert tuple(len(v) for v in parts.values()) == text_mod.SPLIT_SIZES[name]
    for k in (1, 5):
        listed = suite_intents(SUITES / f"{name}-5w{k}s.toml")
        assert listed == {p: set(v) for p, v in parts.items()}


def suite_intents(path: Path) -> dict[str, set[str]]:
    """The '# <part> intents (n):' comment blocks of a suite file."""
    out: dict[str, set[str]] = {}
    part = None
    for line in path.read_text().splitlines():
        if m := re.match(r"# (train|val|test) intents \(\d+\):", line):
            part = m[1]
            out[part] = set()
        elif part and line.startswith("#   "):
            out[part] |= set(line[4:].split())
        else:
            part = None
    return out


@needs_data
def test_token_episodes_keep_int64_and_vocab_comes_from_train_intents() -> None:
    source = DATASETS.get("banking77").load(DATA, "perm0")
    ep = EpisodeSampler(source, "test", Shape(5, 5, 15), 0, "k").episode(0)
    assert ep.support_x.dtype == torch.int64 and ep.support_x.shape == (25, text_mod.MAX_TOKENS)
    assert ep.query_x.shape == (75, text_mod.MAX_TOKENS)
    assert int(ep.support_x.max()) < text_mod.TEXT_WORD_IDS + text_mod.TEXT_CHAR_BUCKETS
    c = text_mod.load_corpus(DATA, "banking77")
    train = set(source.parts["train"])
    train_words = {
        w
        for t, y in zip(c.texts["train"], c.labels["train"], strict=True)
        if c.intents[y] in train
        for w in text_mod.words(t)
    }
    assert set(source.vocab) <= train_words
    task = TaskSpec("classification", 5, 5, 15, source.x_shape, 1, source.backbone)
    encoder = backbone_for(task)
    assert isinstance(encoder, TextEncoder)
    assert encoder(ep.support_x).shape == (25, encoder.out_features)


def write_fixture(folder: Path) -> dict[str, str]:
    """A tiny BANKING77-shaped folder; returns its files' SHA-256 sums."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "categories.json").write_text('["a_intent", "b_intent"]')
    rows = 'text,category\r\nhello there,a_intent\r\n"bye, now",b_intent\r\n'
    (folder / "train.csv").write_text(rows)
    (folder / "test.csv").write_text(rows)
    return {
        f: hashlib.sha256((folder / f).read_bytes()).hexdigest()
        for f in ("train.csv", "test.csv", "categories.json")
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A loopback HTTP server over fixture files: (base URL, their SHA-256 sums)."""
    sums = write_fixture(tmp_path / "served")
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served")
    )
    handler.log_message = lambda *a: None  # keep pytest output clean
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", sums
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_missing_files_are_downloaded_and_verified(tmp_path: Path, server, monkeypatch) -> None:
    url, sums = server
    monkeypatch.setitem(text_mod.URL_BASES, "banking77", url)
    monkeypatch.setitem(text_mod.FILE_SHA256, "banking77", sums)
    corpus = text_mod.load_corpus(tmp_path / "root", "banking77")
    assert corpus.intents == ("a_intent", "b_intent")
    assert corpus.texts["train"] == ("hello there", "bye, now")
    assert (tmp_path / "root" / "banking77" / "test.csv").is_file()


def test_download_with_wrong_sha256_is_refused(tmp_path: Path, server, monkeypatch) -> None:
    url, sums = server
    monkeypatch.setitem(text_mod.URL_BASES, "banking77", url)
    monkeypatch.setitem(text_mod.FILE_SHA256, "banking77", {**sums, "test.csv": "0" * 64})
    with pytest.raises(MetabenchError, match=r"test\.csv: expected SHA-256 0{64}, found"):
        text_mod.load_corpus(tmp_path / "root", "banking77")
    assert not (tmp_path / "root" / "banking77" / "test.csv").exists()


def test_local_file_with_wrong_sha256_names_file_expected_and_found(tmp_path: Path) -> None:
    write_fixture(tmp_path / "banking77")
    expected = text_mod.FILE_SHA256["banking77"]["train.csv"]
    with pytest.raises(
        MetabenchError,
        match=rf"banking77/train\.csv: expected SHA-256 "
        rf"{expected}, found [0-9a-f]{{64}}",
    ):
        text_mod.verified_folder(tmp_path, "banking77")


def test_unreachable_download_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(text_mod.URL_BASES, "clinc150", "http://127.0.0.1:9/")
    with pytest.raises(
        MetabenchError, match=r"data_full\.json.*download of http://127\.0\.0\.1:9/"
    ):
        text_mod.verified_folder(tmp_path, "clinc150")


@needs_data
def test_protonet_beats_chance_on_text_smoke_suite(tmp_path: Path) -> None:
    suite = load_suite(SUITES / "banking77-5w5s.toml", "smoke")
    result = run_cell(Cell(suite, "protonet", 0, "cpu"), TimeMeter(), DATA)
    assert result.score_mean > 0.45  # chance is 0.2
    assert np.isfinite(result.score_ci95)
