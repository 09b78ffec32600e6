"""CO2 from energy: grams = kWh x carbon intensity (g/kWh) x PUE.

The intensity comes from codecarbon's packaged offline data for a country (ISO 3166-1
alpha-3, e.g. FRA) and, where codecarbon has regional data (USA and CAN states/provinces,
CHN provinces, Nordic bidding zones), a region; or from an explicit g/kWh override. No
network. Without a country (none given and none in codecarbon's config), the world average
of codecarbon's data is used and labelled so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.energy.estimate import silence_codecarbon
from bench.errors import input_error

J_PER_KWH = 3.6e6
WORLD = "WORLD"


@dataclass(frozen=True)
class CarbonIntensity:
    """What turns joules into grams of CO2-equivalent for one run."""

    g_per_kwh: float
    source: str  # override | codecarbon:country:<ISO> | codecarbon:region:<ISO>/<region> | ...
    pue: float = 1.0
    region: str = WORLD  # <ISO> or <ISO>/<region>, or WORLD

    def co2_g(self, joules: float) -> float:
        return co2_g(joules, self.g_per_kwh, self.pue)


def co2_g(joules: float, g_per_kwh: float, pue: float = 1.0) -> float:
    """Grams of CO2-eq for `joules` of IT energy: J / 3.6e6 x g/kWh x PUE."""
    return joules / J_PER_KWH * g_per_kwh * pue


def configured_country() -> str | None:
    """codecarbon's configured country (~/.codecarbon.config, ./.codecarbon.config or
    CODECARBON_COUNTRY_ISO_CODE), if any."""
    try:
        from codecarbon.core.config import get_hierarchical_config

        return get_hierarchical_config().get("country_iso_code") or None
    except Exception:  # a broken config file must not stop a run: fall back to WORLD
        return None


def resolve_intensity(
    country: str | None = None,
    region: str | None = None,
    override_g_per_kwh: float | None = None,
    pue: float = 1.0,
) -> CarbonIntensity:
    """The run's carbon intensity: the override if given, else codecarbon's offline data."""
    if not (pue >= 1.0 and math.isfinite(pue)):
        raise input_error("--pue", None, "a finite number >= 1.0", pue)
    if override_g_per_kwh is not None:
        if not (override_g_per_kwh >= 0 and math.isfinite(override_g_per_kwh)):
            raise input_error("--carbon-intensity", None, "a finite g/kWh >= 0", override_g_per_kwh)
        place = (country or WORLD).upper() + (f"/{region.lower()}" if region else "")
        return CarbonIntensity(float(override_g_per_kwh), "override", pue, place)
    country = (country or configured_country() or WORLD).upper()
    silence_codecarbon()
    from codecarbon.input import DataSource

    data = DataSource()
    if country == WORLD:
        g = data.get_carbon_intensity_per_source_data()["world_average"]
        return CarbonIntensity(float(g), "codecarbon:world_average", pue, WORLD)
    mix = data.get_global_energy_mix_data()
    if country not in mix:
        raise input_error(
            "--country",
            None,
            "an ISO 3166-1 alpha-3 code in codecarbon's data (e.g. FRA, USA, DEU)",
            country,
        )
    if region:
        return CarbonIntensity(
            regional_g_per_kwh(data, country, region),
            f"codecarbon:region:{country}/{region.lower()}",
            pue,
            f"{country}/{region.lower()}",
        )
    return CarbonIntensity(
        kg_per_kwh(data, country, None) * 1000.0, f"codecarbon:country:{country}", pue, country
    )


def kg_per_kwh(data: object, country: str, region: str | None) -> float:
    """codecarbon's own private-infrastructure rule, applied to 1 kWh."""
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata

    kg = Emissions(data).get_private_infra_emissions(
        Energy(kWh=1.0), GeoMetadata(country_iso_code=country, region=region)
    )
    if kg is None or not math.isfinite(kg):
        raise input_error("--country", None, "a country codecarbon has data for", country)
    return float(kg)


def regional_g_per_kwh(data: object, country: str, region: str) -> float:
    """Regional intensity; codecarbon silently falls back to the country figure for an
    unknown region, so compare and refuse that case."""
    g = kg_per_kwh(data, country, region) * 1000.0
    if g == kg_per_kwh(data, country, None) * 1000.0 and not has_region(data, country, region):
        raise input_error(
            "--region", None, f"a region codecarbon has data for in {country}", region
        )
    return g


def has_region(data: object, country: str, region: str) -> bool:
    for getter in ("get_country_emissions_data", "get_country_energy_mix_data"):
        try:
            if region.lower() in getattr(data, getter)(country.lower()):
                return True
        except Exception:  # codecarbon raises its own DataSourceException for no file
            continue
    return False
