"""Omniglot (Lake et al. 2015): 1623 characters x 20 drawings, resized to 28x28 once and cached.

Sources, in order: the packed npz files of the shared data folder (`<root>/omniglot/
images_{background,evaluation}.npz`), the official PNG archives (`images_background.zip`,
`images_evaluation.zip`) in the same folder, or a download of those archives from the
official repository, verified against the published MD5 sums. Classes are characters
rotated by multiples of 90 degrees. Splits: Vinyals et al. 2016 (default; list files ship
with the package) or Lake's background/evaluation split.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.data import DATASETS, default_cache_dir
from bench.data.download import Fetch, fetch_verified, file_digest, read_manifest
from bench.errors import MetabenchError

PARTS_FILES = ("images_background", "images_evaluation")
NPZ_KEYS = ("images_packed", "image_shape", "alphabet_names", "char_alphabet", "char_names")
# Published MD5 sums of the official archives (the ones torchvision checks).
ARCHIVE_MD5 = {
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
}
URL_BASE = "https://github.com/brendenlake/omniglot/raw/master/python/"
SAMPLES_PER_CLASS = 20
IMAGE_SIZE = 28
ROTATIONS = (0, 90, 180, 270)
SPLIT_DIR = Path(__file__).parent / "splits" / "omniglot_vinyals"
# Classes (characters x 4 rotations) per part, for suite validation without loading images.
SPLIT_SIZES = {
    "vinyals": {"train": 1028 * 4, "val": 172 * 4, "test": 423 * 4},
    "lake": {"train": (964 - 97) * 4, "val": 97 * 4, "test": 659 * 4},
}
HOW_TO_POINT = (
    "point --data-dir or $METABENCH_DATA at a data root that holds omniglot/ with "
    "images_background.npz and images_evaluation.npz (or the official .zip archives)"
)


@dataclass(frozen=True)
class RawOmniglot:
    """All characters of one original archive: ink [n_chars, 20, H, W] (uint8 0..255, ink
    high) and the 'Alphabet/characterNN' name of each character."""

    ink: np.ndarray
    names: list[str]
    n_background: int  # the first n_background characters come from images_background


def md5sum(path: Path) -> str:
    return file_digest(path, "md5")


def resize_ink(ink: np.ndarray, size: int = IMAGE_SIZE, chunk: int = 64) -> np.ndarray:
    """Area-average bool or uint8 ink [n, 20, H, W] to uint8 [n, 20, size, size], in chunks
    so that the 105x105 originals are never all unpacked in memory at once."""
    out = np.empty((*ink.shape[:2], size, size), dtype=np.uint8)
    for start in range(0, len(ink), chunk):
        part = torch.from_numpy(np.asarray(ink[start : start + chunk], dtype=np.float32))
        n, s, h, w = part.shape
        scale = 255.0 if ink.dtype == bool else 1.0
        small = F.interpolate(part.reshape(n * s, 1, h, w) * scale, size=(size, size), mode="area")
        out[start : start + n] = small.reshape(n, s, size, size).round().clamp(0, 255).byte()
    return out


def read_npz(path: Path) -> RawOmniglot:
    """The packed-bits npz format of the shared data folder, resized to 28x28."""
    try:
        z = np.load(path, allow_pickle=False)
        packed, shape = z["images_packed"], tuple(int(v) for v in z["image_shape"])
        alphabets, char_alpha, char_names = z["alphabet_names"], z["char_alphabet"], z["char_names"]
    except (OSError, KeyError, ValueError) as e:
        raise MetabenchError(
            f"{path}: expected an Omniglot packed npz, found unreadable ({e})"
        ) from None
    small = np.empty((shape[0], shape[1], IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for start in range(0, shape[0], 64):
        bits = np.unpackbits(packed[start : start + 64], axis=-1, count=shape[3]).astype(bool)
        small[start : start + len(bits)] = resize_ink(bits)
    names = [f"{alphabets[a]}/{c}" for a, c in zip(char_alpha, char_names)]
    return RawOmniglot(small, names, len(names))


def check_npz(path: Path) -> None:
    """A packed npz that reads back: every member's CRC and the arrays read_npz needs
    (a zip test of the few-MB file, no decoding of the images). Raises MetabenchError."""
    try:
        with zipfile.ZipFile(path) as zf:
            damaged = zf.testzip()  # the first member whose CRC fails, or None
            members = set(zf.namelist())
        damaged = damaged and f"its member {damaged} damaged"
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as e:
        damaged, members = f"an unreadable file ({e})", set()
    missing = [f"{k}.npy" for k in NPZ_KEYS if f"{k}.npy" not in members]
    found = damaged if damaged else f"no {', '.join(missing)} in it" if missing else None
    if found:
        raise MetabenchError(
            f"{path}: expected an Omniglot packed npz, found {found} (corrupt or partial; "
            f"delete it to download the official archive, or {HOW_TO_POINT})"
        )


def read_zip(path: Path, expected_md5: str | None) -> RawOmniglot:
    """An official PNG archive: images_<part>/<Alphabet>/<characterNN>/<id>_<NN>.png, 1-bit
    with white = 1. Characters are ordered by their global id, as in the npz files."""
    from PIL import Image

    if expected_md5 is not None and (found := md5sum(path)) != expected_md5:
        raise MetabenchError(
            f"{path}: expected MD5 {expected_md5}, found {found} (corrupt or partial "
            f"download; delete it and retry, or {HOW_TO_POINT})"
        )
    pattern = re.compile(r"^[^/]+/([^/]+)/([^/]+)/(\d+)_(\d+)\.png$")
    chars: dict[int, tuple[str, dict[int, np.ndarray]]] = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            m = pattern.match(info.filename)
            if not m:
                continue
            alphabet, char, char_id, drawing = m[1], m[2], int(m[3]), int(m[4])
            with Image.open(io.BytesIO(zf.read(info))) as im:
                ink = ~np.asarray(im.convert("1"), dtype=bool)
            chars.setdefault(char_id, (f"{alphabet}/{char}", {}))[1][drawing - 1] = ink
    if not chars:
        raise MetabenchError(f"{path}: expected Omniglot PNG files inside, found none")
    ids = sorted(chars)
    bad = [chars[i][0] for i in ids if len(chars[i][1]) != SAMPLES_PER_CLASS]
    if bad:
        raise MetabenchError(
            f"{path}: expected {SAMPLES_PER_CLASS} drawings per character, "
            f"found a different number for {bad[0]}"
        )
    ink = np.stack([np.stack([chars[i][1][d] for d in range(SAMPLES_PER_CLASS)]) for i in ids])
    return RawOmniglot(resize_ink(ink), [chars[i][0] for i in ids], len(ids))


def download(name: str, dest: Path, fetch: Fetch = fetch_verified) -> Path:
    """Fetch <name>.zip from the official repository into dest/, verified by MD5."""
    return fetch(
        f"{URL_BASE}{name}.zip",
        dest / f"{name}.zip",
        "md5",
        ARCHIVE_MD5[name],
        f"{name}.npz or {name}.zip",
        HOW_TO_POINT,
    )


def read_archive(folder: Path, name: str) -> RawOmniglot:
    if (folder / f"{name}.npz").is_file():
        return read_npz(folder / f"{name}.npz")
    if (folder / f"{name}.zip").is_file():
        return read_zip(folder / f"{name}.zip", ARCHIVE_MD5[name])
    return read_zip(download(name, folder), None)  # download() verified the MD5


def source_id(folder: Path) -> str:
    """Identifies the source files (name, size, mtime) so the 28x28 cache is rebuilt when
    they change."""
    h = hashlib.sha256()
    for p in sorted(folder.glob("images_*")):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_all(root: Path, cache_dir: Path | None = None) -> RawOmniglot:
    """Background then evaluation characters, 28x28, cached under the user cache directory."""
    folder = root / "omniglot"
    cache_dir = cache_dir or default_cache_dir()
    cache = cache_dir / f"omniglot28-{source_id(folder)}.npz"
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return RawOmniglot(z["ink"], [str(n) for n in z["names"]], int(z["n_background"]))
    background, evaluation = (read_archive(folder, name) for name in PARTS_FILES)
    raw = RawOmniglot(
        np.concatenate([background.ink, evaluation.ink]),
        background.names + evaluation.names,
        len(background.names),
    )
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, ink=raw.ink, names=np.array(raw.names), n_background=raw.n_background)
        Path(tmp.name).replace(cache)
    except OSError:
        pass  # a read-only cache only costs the resize next time
    return raw


def vinyals_parts(names: list[str]) -> dict[str, np.ndarray]:
    """Vinyals split: list files of 'Alphabet/characterNN/rotDDD' -> [n, 2] (char, k90)."""
    index = {n: i for i, n in enumerate(names)}
    parts = {}
    for part in ("train", "val", "test"):
        rows = []
        for line in (SPLIT_DIR / f"{part}.txt").read_text().split():
            name, rot = line.rsplit("/", 1)
            rows.append((index[name], int(rot[3:]) // 90))
        parts[part] = np.array(rows, dtype=np.int64)
    return parts


def lake_parts(n_background: int, n_total: int) -> dict[str, np.ndarray]:
    """Lake split: meta-train on the background set, test on the evaluation set; every 10th
    background character (97 of 964) is held out for validation."""

    def with_rotations(chars: np.ndarray) -> np.ndarray:
        return np.array([(c, k) for c in chars for k in range(4)], dtype=np.int64)

    background = np.arange(n_background)
    val = background[::10]
    return {
        "train": with_rotations(np.setdiff1d(background, val)),
        "val": with_rotations(val),
        "test": with_rotations(np.arange(n_background, n_total)),
    }


class OmniglotSource:
    """Classification source over 28x28 Omniglot; a class is (character, rotation)."""

    kind = "classification"
    x_shape = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self, raw: RawOmniglot, split: str) -> None:
        self.images = torch.from_numpy(raw.ink)  # [n_chars, 20, 28, 28] uint8
        if split == "vinyals":
            self.parts = vinyals_parts(raw.names)
        else:
            self.parts = lake_parts(raw.n_background, len(raw.names))

    def counts(self, part: str) -> np.ndarray:
        return np.full(len(self.parts[part]), SAMPLES_PER_CLASS)

    def gather(self, part: str, classes: np.ndarray, samples: np.ndarray) -> torch.Tensor:
        chars, rots = self.parts[part][classes].T
        imgs = self.images[torch.from_numpy(chars)[:, None], torch.from_numpy(samples)]
        out = torch.stack([torch.rot90(img, int(k), dims=(-2, -1)) for img, k in zip(imgs, rots)])
        return out.unsqueeze(2).float().div_(255.0)  # [n, m, 1, 28, 28]


@DATASETS.register("omniglot")
class Omniglot:
    """Registry entry: what the suite loader needs to validate, and how to load."""

    task_kinds = ("classification",)
    splits = tuple(SPLIT_SIZES)
    samples_per_class = SAMPLES_PER_CLASS

    @staticmethod
    def n_classes(split: str, part: str) -> int:
        return SPLIT_SIZES[split][part]

    @staticmethod
    def load(root: Path, split: str) -> OmniglotSource:
        return OmniglotSource(load_all(root), split)

    @staticmethod
    def prepare(root: Path, fetch: Fetch = fetch_verified) -> None:
        """Before any cell runs: both parts as npz (checked against the folder's
        MANIFEST.sha256 when it has one) or as an official zip (checked against its
        published MD5), else downloaded with `fetch`."""
        folder = Path(root) / "omniglot"
        manifest = read_manifest(folder / "MANIFEST.sha256")
        for name in PARTS_FILES:
            npz, archive = folder / f"{name}.npz", folder / f"{name}.zip"
            if npz.is_file():
                algorithm, expected = "sha256", manifest.get(npz.name)
                path = npz
            elif archive.is_file():
                algorithm, expected, path = "md5", ARCHIVE_MD5[name], archive
            else:
                download(name, folder, fetch)
                continue
            if expected and (found := file_digest(path, algorithm)) != expected:
                raise MetabenchError(
                    f"{path}: expected {algorithm.upper()} {expected}, found {found} (corrupt "
                    f"or partial; delete it to download the official archive, or {HOW_TO_POINT})"
                )
            if not expected:  # an npz no manifest vouches for: open it (a few MB)
                check_npz(path)
