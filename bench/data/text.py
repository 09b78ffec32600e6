"""Few-shot intent classification: BANKING77 (Casanueva et al. 2020) and CLINC150 (Larson
et al. 2019), 5-way episodes over class-disjoint intent splits.

Files are read from `<root>/banking77/` (train.csv, test.csv, categories.json) and
`<root>/clinc150/` (data_full.json), verified by their published SHA-256 sums (the same sums
as the folders' MANIFEST.sha256). A missing file is downloaded from the dataset's official
repository (`URL_BASES`, pinned to a commit) and verified before it is kept.

Split "perm0": the sorted intent names permuted with numpy's `default_rng(0)`; the first
`SPLIT_SIZES[name][0]` intents are meta-training (train part), the next `[1]` validation
(val part, carved from the meta-training intents of the issue's 50/27 and 100/50 splits),
the rest test. Train and val episodes draw from the official training utterances, test
episodes from the official test utterances. CLINC150's out-of-scope utterances (`oos_*`)
are not classes and are never read.

Inputs are int64 token ids [MAX_TOKENS] (0 = padding): up to MAX_WORDS word ids from a
vocabulary built from the train part's utterances only (1 = unknown word), then hashed
character trigrams of the words, for the "text" backbone of bench.methods.backbones.
"""

from __future__ import annotations

import csv
import functools
import json
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data import DATASETS
from bench.data.download import Fetch, fetch_verified, file_digest, read_manifest
from bench.errors import MetabenchError

# Official repositories, pinned to the commits the shared data folder was taken from.
URL_BASES = {
    "banking77": "https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/"
    "57ec275d8078af65b7731c2a98be812d844a6d6b/banking_data/",
    "clinc150": "https://raw.githubusercontent.com/clinc/oos-eval/"
    "828f8093932c8fe6ca7936c3d2e52903b1c523de/data/",
}
FILE_SHA256 = {
    "banking77": {
        "train.csv": "b06e26ac675513959a63135f11b94ea7786ed02da65db93a5650d8838cbc664b",
        "test.csv": "d12d6e3bc4c3103966ae786dc435913c0c563dfa328f5a3646d0e62cfeeb474d",
        "categories.json": "53261da888122daf2d120d925458631d9619e15d82e56052e7a42e535ce32b63",
    },
    "clinc150": {
        "data_full.json": "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0",
    },
}
# Intents per part (train, val, test) of split "perm0"; train + val = meta-training intents.
SPLIT_SIZES = {"banking77": (40, 10, 27), "clinc150": (80, 20, 50)}
SPLIT_SEED = 0
# Fewest utterances of one intent in any part (BANKING77 train: 35; CLINC150 test: 30).
MIN_PER_CLASS = {"banking77": 35, "clinc150": 30}
# Token-id space shared with the "text" backbone (bench.methods.backbones.TextEncoder):
# 0 padding, 1 unknown word, word ids below TEXT_WORD_IDS, hashed character trigrams in
# [TEXT_WORD_IDS, TEXT_WORD_IDS + TEXT_CHAR_BUCKETS).
TEXT_WORD_IDS = 1024
TEXT_CHAR_BUCKETS = 1024
MAX_WORDS = 32
MAX_TOKENS = 96
WORD = re.compile(r"[a-z0-9']+")
HOW_TO_POINT = "point --data-dir or $METABENCH_DATA at a data root that holds {name}/"


@dataclass(frozen=True)
class Corpus:
    """One dataset's in-scope utterances: intents (sorted names) and, per official split
    ("train", "test", and "val" for CLINC150), texts [n] and label indices [n] into intents."""

    name: str
    intents: tuple[str, ...]
    texts: dict[str, tuple[str, ...]]
    labels: dict[str, np.ndarray]


def sha256sum(path: Path) -> str:
    return file_digest(path, "sha256")


def download(name: str, filename: str, dest: Path, fetch: Fetch = fetch_verified) -> Path:
    """Fetch URL_BASES[name] + filename into dest/, kept only if its SHA-256 matches."""
    return fetch(
        URL_BASES[name] + filename,
        dest / filename,
        "sha256",
        FILE_SHA256[name][filename],
        filename,
        HOW_TO_POINT.format(name=name),
    )


def verified_folder(root: Path, name: str, fetch: Fetch = fetch_verified) -> Path:
    """<root>/<name> with every file of FILE_SHA256[name] present (downloaded if missing)
    and matching its SHA-256 (and the folder's MANIFEST.sha256, when there is one)."""
    folder = Path(root) / name
    manifest = read_manifest(folder / "MANIFEST.sha256")
    for filename, expected in FILE_SHA256[name].items():
        path = folder / filename
        if filename in manifest and manifest[filename] != expected:
            raise MetabenchError(
                f"{folder / 'MANIFEST.sha256'}: key '{filename}': expected "
                f"SHA-256 {expected}, found {manifest[filename]}"
            )
        if not path.is_file():
            download(name, filename, folder, fetch)
        elif (found := sha256sum(path)) != expected:
            raise MetabenchError(
                f"{path}: expected SHA-256 {expected}, found {found} (a different or corrupt "
                f"file; delete it to download the official one, or "
                f"{HOW_TO_POINT.format(name=name)})"
            )
    return folder


def read_banking77(folder: Path) -> Corpus:
    """train.csv / test.csv (columns text,category; CRLF, quoted) and categories.json."""
    intents = tuple(sorted(json.loads((folder / "categories.json").read_text("utf-8"))))
    index = {n: i for i, n in enumerate(intents)}
    texts, labels = {}, {}
    for part in ("train", "test"):
        with open(folder / f"{part}.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        texts[part] = tuple(r["text"] for r in rows)
        labels[part] = np.array([index[r["category"]] for r in rows], dtype=np.int64)
    return Corpus("banking77", intents, texts, labels)


def read_clinc150(folder: Path) -> Corpus:
    """data_full.json: keys train/val/test of [text, intent] pairs; oos_* keys skipped."""
    data = json.loads((folder / "data_full.json").read_text("utf-8"))
    intents = tuple(
        sorted({intent for part in ("train", "val", "test") for _, intent in data[part]})
    )
    index = {n: i for i, n in enumerate(intents)}
    texts = {p: tuple(t for t, _ in data[p]) for p in ("train", "val", "test")}
    labels = {
        p: np.array([index[i] for _, i in data[p]], dtype=np.int64)
        for p in ("train", "val", "test")
    }
    return Corpus("clinc150", intents, texts, labels)


READERS = {"banking77": read_banking77, "clinc150": read_clinc150}


def load_corpus(root: Path, name: str) -> Corpus:
    return READERS[name](verified_folder(root, name))


def intent_split(
    intents: tuple[str, ...], sizes: tuple[int, int, int], seed: int = SPLIT_SEED
) -> dict[str, tuple[str, ...]]:
    """Sorted intent names, permuted by default_rng(seed), cut into train / val / test."""
    order = np.random.default_rng(seed).permutation(len(intents))
    names = [sorted(intents)[i] for i in order]
    n_train, n_val, _ = sizes
    return {
        "train": tuple(names[:n_train]),
        "val": tuple(names[n_train : n_train + n_val]),
        "test": tuple(names[n_train + n_val :]),
    }


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def build_vocab(texts: list[str]) -> dict[str, int]:
    """Word -> id (2..TEXT_WORD_IDS-1) by frequency, ties alphabetical; 0 pad, 1 unknown."""
    counts = Counter(w for t in texts for w in words(t))
    ranked = sorted(counts, key=lambda w: (-counts[w], w))[: TEXT_WORD_IDS - 2]
    return {w: i + 2 for i, w in enumerate(ranked)}


def trigram_id(gram: str) -> int:
    """A character trigram's hashed id in [TEXT_WORD_IDS, TEXT_WORD_IDS + TEXT_CHAR_BUCKETS);
    crc32 is stable across processes, unlike hash()."""
    return TEXT_WORD_IDS + zlib.crc32(gram.encode()) % TEXT_CHAR_BUCKETS


def tokenize(text: str, vocab: dict[str, int]) -> np.ndarray:
    """Text -> int64 ids [MAX_TOKENS]: word ids, then trigrams of '<word>', zero-padded."""
    ws = words(text)[:MAX_WORDS]
    ids = [vocab.get(w, 1) for w in ws]
    for w in ws:
        padded = f"<{w}>"
        ids += [trigram_id(padded[i : i + 3]) for i in range(len(padded) - 2)]
    out = np.zeros(MAX_TOKENS, dtype=np.int64)
    ids = ids[:MAX_TOKENS]
    out[: len(ids)] = ids
    return out


class TextSource:
    """Classification source over token ids; a class is an intent of the part.

    tokens[part]: int64 [n_utterances, MAX_TOKENS]; members[part]: int64 [n_classes,
    max_count] row indices into tokens[part] (-1 beyond a class's count).
    """

    kind = "classification"
    backbone = "text"
    x_shape = (MAX_TOKENS,)

    def __init__(self, corpus: Corpus, split: str) -> None:
        self.parts = intent_split(corpus.intents, SPLIT_SIZES[corpus.name])
        index = {n: i for i, n in enumerate(corpus.intents)}
        official = {"train": "train", "val": "train", "test": "test"}
        train_ids = {index[n] for n in self.parts["train"]}
        self.vocab = build_vocab(
            [
                t
                for t, y in zip(corpus.texts["train"], corpus.labels["train"], strict=True)
                if y in train_ids
            ]
        )
        self.tokens: dict[str, torch.Tensor] = {}
        self.members: dict[str, torch.Tensor] = {}
        for part, names in self.parts.items():
            texts, labels = corpus.texts[official[part]], corpus.labels[official[part]]
            rows = [np.flatnonzero(labels == index[n]) for n in names]
            used = np.concatenate(rows)
            self.tokens[part] = torch.from_numpy(
                np.stack([tokenize(texts[i], self.vocab) for i in used])
            )
            position = {int(u): j for j, u in enumerate(used)}
            table = np.full((len(rows), max(len(r) for r in rows)), -1, dtype=np.int64)
            for c, r in enumerate(rows):
                table[c, : len(r)] = [position[int(u)] for u in r]
            self.members[part] = torch.from_numpy(table)

    def counts(self, part: str) -> np.ndarray:
        return (self.members[part] >= 0).sum(1).numpy()

    def gather(self, part: str, classes: np.ndarray, samples: np.ndarray) -> torch.Tensor:
        """Token ids of classes [n] x samples [n, m] -> int64 [n, m, MAX_TOKENS]."""
        rows = self.members[part][torch.from_numpy(classes)[:, None], torch.from_numpy(samples)]
        return self.tokens[part][rows]


@functools.lru_cache(maxsize=4)
def _cached_source(root: Path, name: str, split: str) -> TextSource:
    return TextSource(load_corpus(root, name), split)


class _Intents:
    """Registry entry shared by the intent datasets."""

    name: str
    task_kinds = ("classification",)
    splits = ("perm0",)

    @classmethod
    def n_classes(cls, split: str, part: str) -> int:
        return SPLIT_SIZES[cls.name][("train", "val", "test").index(part)]

    @classmethod
    def load(cls, root: Path, split: str) -> TextSource:
        return _cached_source(Path(root), cls.name, split)

    @classmethod
    def prepare(cls, root: Path, fetch: Fetch = fetch_verified) -> None:
        """Before any cell runs: every file present and verified (downloaded if missing)."""
        verified_folder(Path(root), cls.name, fetch)


@DATASETS.register("banking77")
class Banking77(_Intents):
    name = "banking77"
    samples_per_class = MIN_PER_CLASS["banking77"]


@DATASETS.register("clinc150")
class Clinc150(_Intents):
    name = "clinc150"
    samples_per_class = MIN_PER_CLASS["clinc150"]
