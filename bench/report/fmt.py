"""Numbers for people: three significant digits, thousands separators, SI-prefixed joules
and grams of CO2 (µg to t), never scientific notation (the headline, tables and plot
labels), and break-even N* with the digits its interval supports."""

from __future__ import annotations

import math

ENERGY_UNITS = ((1e6, "MJ"), (1e3, "kJ"), (1.0, "J"))
MASS_UNITS = ((1e6, "t"), (1e3, "kg"), (1.0, "g"), (1e-3, "mg"), (1e-6, "µg"))


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def sig(value: float, digits: int = 3) -> str:
    """`value` rounded to `digits` significant digits, in positional notation with
    thousands separators: 2403.7 -> "2,400", 0.000123456 -> "0.000123", 97.72 -> "97.7"."""
    if is_missing(value):
        return "—"
    if value == 0:
        return "0"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    exponent = math.floor(math.log10(abs(value)))
    places = digits - 1 - exponent  # negative: round to tens, hundreds, ...
    rounded = round(value, places)
    # rounding can carry into a new digit (999.6 -> 1000): one place fewer
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > exponent:
        places -= 1
        rounded = round(value, places)
    return f"{rounded:,.{max(places, 0)}f}"


def _scaled(value: float, units: tuple[tuple[float, str], ...], digits: int) -> str:
    if is_missing(value):
        return "not measured"
    if value == 0:
        return "0 " + next(unit for scale, unit in units if scale == 1.0)
    for scale, unit in units:
        if abs(value) >= scale * 0.9995:  # 999.96 J reads "1.00 kJ", not "1,000 J"
            return f"{sig(value / scale, digits)} {unit}"
    scale, unit = units[-1]
    return f"{sig(value / scale, digits)} {unit}"


def joules(value: float, digits: int = 3) -> str:
    """2403.7 -> "2.40 kJ"; 0.166 -> "0.166 J"; NaN -> "not measured"."""
    text = _scaled(value, ENERGY_UNITS, digits)
    return _keep_zeros(text, value, ENERGY_UNITS, digits)


def mass_unit(values) -> tuple[float, str]:
    """(scale, unit) for a set of CO2 masses in grams shown together (a table column, an
    axis): the unit in which the largest reads from 1 to 999 (µg at the smallest), so
    every figure of the set reads in one unit without leading zeros."""
    finite = [abs(float(v)) for v in values if not is_missing(v) and math.isfinite(float(v))]
    top = max(finite, default=0.0)
    for scale, unit in MASS_UNITS:
        if top >= scale * 0.9995:
            return scale, unit
    return MASS_UNITS[-1]


def grams(value: float, digits: int = 3, unit: tuple[float, str] | None = None) -> str:
    """CO2 mass: 0.000212 -> "212 µg"; 1530 -> "1.53 kg"; with `unit` (from mass_unit)
    every value of a set in that unit: (0.0000467, unit=(1e-3, "mg")) -> "0.0467 mg"."""
    if unit is None:
        return _keep_zeros(_scaled(value, MASS_UNITS, digits), value, MASS_UNITS, digits)
    if is_missing(value):
        return "not measured"
    scale, name = unit
    return _keep_zeros(f"{sig(value / scale, digits)} {name}", value, MASS_UNITS, digits)


def _keep_zeros(text: str, value: float, units, digits: int) -> str:
    """ "2.4 kJ" -> "2.40 kJ": three significant digits stay three when trailing zeros."""
    if is_missing(value) or value == 0 or " " not in text:
        return text
    number, unit = text.split(" ", 1)
    plain = number.replace(",", "").lstrip("-")
    significant = plain.replace(".", "").lstrip("0")
    if len(significant) < digits and "," not in number:
        missing = digits - len(significant)
        number += ("" if "." in number else ".") + "0" * missing
    return f"{number} {unit}"


def seconds(value: float) -> str:
    """85.7 -> "85.7 s"; 3174 -> "52.9 min"; 0.0123 -> "12.3 ms"."""
    if is_missing(value):
        return "—"
    if value >= 3600:
        return f"{sig(value / 3600)} h"
    if value >= 120:
        return f"{sig(value / 60)} min"
    if 0 < value < 1:
        return f"{sig(value * 1000)} ms"
    return f"{sig(value)} s"


def _decade(value: float) -> float:
    return 10.0 ** math.floor(math.log10(abs(value))) if value else 1.0


def _whole(value: float, step: float, open_end: str) -> str:
    """A number of tasks rounded to `step` (>= 1): 0 stays 0, anything above 0 reads at
    least 1 (tasks are served whole), +inf reads `open_end`."""
    if math.isinf(value):
        return open_end
    rounded = round(value / step) * step
    if value > 0:
        rounded = max(rounded, 1.0)
    return f"{int(rounded):,}"


def tasks_parts(
    n: float, lo: float = math.nan, hi: float = math.nan, open_end: str = "never"
) -> tuple[str, str]:
    """(estimate, interval) of N* in tasks, keeping only the digits the interval supports:
    the estimate is rounded to the decade of the interval's shorter finite arm (whole tasks,
    at most three significant digits, at least its own leading one), each end to that step
    or its own leading digit if finer. A lower end of 0 prints 0 (resamples that were
    cheaper from the first task); an infinite upper end prints `open_end` ("never" for
    "after N*": resamples that never pay back). The interval is "" without one.

    (116.96, 44.9, 255.6) -> ("120 tasks", "95% CI 40 to 260"); (40, 8, inf) -> ("40 tasks",
    "95% CI 8 to never"); (116.94) -> ("117 tasks", ""); NaN -> ("—", "")."""
    if is_missing(n):
        return "—", ""
    has_ci = not (is_missing(lo) or is_missing(hi))
    arms = [a for a in (n - lo, hi - n) if has_ci and math.isfinite(a) and a > 0]
    top = max(_decade(n), 1.0)
    finest = max(top / 100, 1.0)
    step = min(max(_decade(min(arms)), finest), top) if arms else finest
    text = _whole(n, step, open_end)
    text += " task" if text == "1" else " tasks"
    if not has_ci:
        return text, ""
    ends = [
        _whole(e, max(min(step, _decade(e)), 1.0) if math.isfinite(e) else step, open_end)
        for e in (lo, hi)
    ]
    return text, f"95% CI {ends[0]} to {ends[1]}"


def tasks(n: float, lo: float = math.nan, hi: float = math.nan, open_end: str = "never") -> str:
    """tasks_parts on one line: "120 tasks (95% CI 40 to 260)", "117 tasks", "—"."""
    text, interval = tasks_parts(n, lo, hi, open_end)
    return f"{text} ({interval})" if interval else text


def _score_parts(value: float, ci: float, lower_better: bool) -> tuple[str, str, str, str]:
    """(prefix, mean, "± half" or "", suffix): the CI to the mean's last shown decimal."""
    scale, prefix, suffix = (1.0, "MSE ", "") if lower_better else (100.0, "", "%")
    mean = sig(value * scale, 3)
    if is_missing(ci):
        return prefix, mean, "", suffix
    decimals = len(mean.split(".")[1]) if "." in mean else 0
    half = round(ci * scale, decimals)
    if ci == 0:
        return prefix, mean, "± 0", suffix
    if half == 0:  # narrower than the last digit shown: say so instead of "± 0"
        return prefix, mean, f"± <{10**-decimals:g}", suffix
    return prefix, mean, f"± {half:,.{decimals}f}", suffix


def score(value: float, ci: float, lower_better: bool) -> str:
    """Accuracy in percent, MSE as is; the CI to the mean's last shown decimal:
    (0.9772, 0.0028, False) -> "97.7 ± 0.3%"; (1.023, 0.086, True) -> "MSE 1.02 ± 0.09"."""
    if is_missing(value):
        return "—"
    prefix, mean, half, suffix = _score_parts(value, ci, lower_better)
    return f"{prefix}{mean}{' ' + half if half else ''}{suffix}"


def score_ci(value: float, ci: float, lower_better: bool) -> str:
    """A second interval of a score shown beside score(): its "± half" alone, to the
    same decimal: (0.70, 0.625, False) -> "± 62.5%"; NaN -> "—"."""
    if is_missing(value) or is_missing(ci):
        return "—"
    _, _, half, suffix = _score_parts(value, ci, lower_better)
    return half + suffix


def joules_interval(lo: float, hi: float, digits: int = 3) -> str:
    """A 95% interval of an energy, both ends in the upper end's unit: (1980, 2150) ->
    "95% CI 1.98 to 2.15 kJ"; "" when either end is missing."""
    if is_missing(lo) or is_missing(hi) or not (math.isfinite(lo) and math.isfinite(hi)):
        return ""
    top = max(abs(lo), abs(hi))
    scale, unit = next(((sc, u) for sc, u in ENERGY_UNITS if top >= sc * 0.9995), ENERGY_UNITS[-1])
    return f"95% CI {sig(lo / scale, digits)} to {sig(hi / scale, digits)} {unit}"
