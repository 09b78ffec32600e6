"""One look per method, the same in every plot of every report: colour, marker and hatch
fixed by method name (not by the sorted names present in a run), plus the names prose
uses for them.

The nine built-in methods have hand-picked styles: a colour from the Okabe-Ito palette
(Okabe & Ito, "Color Universal Design", 2008) or Paul Tol's colour-blind-safe sets
(https://personal.sron.nl/~pault/), each with its own marker and hatch, so any two
differ in all three and stay apart in grey-scale print. Hatches are line patterns only
(dot and circle hatches make a bar's inline SVG ten times larger). Any other name gets a style from
a spare pool chosen by a hash of the name (stable across reports and Python processes);
if two names of one report land on the same spare style, the later (sorted) one moves to
the next free one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    hatch: str


BUILTIN: dict[str, Style] = {
    "protonet": Style("#0072B2", "o", ""),  # blue
    "maml": Style("#D55E00", "s", "//"),  # vermillion
    "fomaml": Style("#E69F00", "^", "\\\\"),  # orange
    "anil": Style("#009E73", "D", "||"),  # bluish green
    "metasgd": Style("#CC79A7", "v", "xx"),  # reddish purple
    "reptile": Style("#56B4E9", "P", "++"),  # sky blue
    "learned_opt": Style("#882255", "h", "/|"),  # wine (Tol)
    "scratch": Style("#000000", "X", "--"),  # black: the baseline without any training
    "transfer": Style("#999933", "*", "\\|"),  # olive (Tol)
}
# Spare styles for other methods: colours, markers and hatches none of the built-ins use.
SPARE_COLORS = ("#332288", "#44AA99", "#AA4499", "#117733", "#88CCEE", "#DDCC77", "#661100")
SPARE_MARKERS = ("<", ">", "p", "8", "d", "H", "1")
SPARE_HATCHES = ("x-", "x|", "/-", "\\-", "//|", "\\\\-", "xx-")
SPARE = tuple(
    Style(c, m, h) for c, m, h in zip(SPARE_COLORS, SPARE_MARKERS, SPARE_HATCHES, strict=True)
)

# Names for prose (the headline); tables and plots keep the registry names.
DISPLAY = {
    "protonet": "ProtoNets",
    "maml": "MAML",
    "fomaml": "FOMAML",
    "anil": "ANIL",
    "metasgd": "Meta-SGD",
    "reptile": "Reptile",
    "learned_opt": "the learned optimizer",
    "scratch": "from-scratch",
    "transfer": "transfer",
}


def display_name(method: str) -> str:
    return DISPLAY.get(method, method)


def _spare_slot(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(SPARE)


def method_styles(methods: list[str]) -> dict[str, Style]:
    """{method: Style} for the methods of one report: built-ins fixed; any other name takes
    the spare style its name hashes to, or the next free one in this report. Past the
    seven spares, names repeat a spare colour with another spare marker and no hatch (so
    colour + marker stay distinct for up to 49 unknown names)."""
    out = {m: BUILTIN[m] for m in set(methods) if m in BUILTIN}
    taken: set[tuple[int, int]] = set()  # (spare slot, lap)
    n = len(SPARE)
    for name in sorted(set(methods) - set(BUILTIN)):
        start = slot = _spare_slot(name)
        lap = 0
        while (slot, lap) in taken:
            slot = (slot + 1) % n
            if slot == start:
                lap += 1
        taken.add((slot, lap))
        base = SPARE[slot]
        out[name] = base if lap == 0 else Style(base.color, SPARE_MARKERS[(slot + lap) % n], "")
    return out
