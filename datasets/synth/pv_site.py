"""PV plant model: blocks of fixed-tilt tables, module rows, strings and inverters, and its as-built GeoJSON.

Tables run east-west; a table holds ``rows_high`` modules stacked north-south (portrait: long side N-S,
landscape: long side E-W). Each module row of a block is wired into strings of consecutive modules; strings are
grouped onto inverters. Module ids are ``B<block>-R<row>-M<col>`` (row = module row counted from the north
within the block, col = module counted from the west), string ids ``B<block>-I<inv>-S<string>``.
Geometry is the modules' ground projection (what a nadir camera sees), in local ENU metres.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datasets.synth.geo import GeoOrigin

MODULE_GAP_M = 0.02
TABLE_GAP_M = 0.5
ROAD_WIDTH_M = 5.0


@dataclass
class PVSite:
    """A PV plant. Arrays are indexed by module index (N,)."""

    origin: GeoOrigin
    orientation: str
    """``portrait`` (module long side north-south) or ``landscape``."""
    module_long_m: float
    module_short_m: float
    cells_long: int
    cells_short: int
    cell_style: str
    """``mono``, ``poly`` or ``halfcut``."""
    rows_high: int
    e0: np.ndarray
    n0: np.ndarray
    e1: np.ndarray
    n1: np.ndarray
    block: np.ndarray
    row: np.ndarray
    col: np.ndarray
    string_index: np.ndarray
    module_ids: list[str]
    string_ids: list[str]
    string_inverters: list[str]
    string_modules: list[np.ndarray]
    tables: np.ndarray
    """(T, 4) table rectangles e0, n0, e1, n1."""
    roads: np.ndarray
    """(R, 4) gravel roads e0, n0, e1, n1."""
    extent: tuple[float, float, float, float]
    """e_min, n_min, e_max, n_max covered by the plant and its surroundings."""
    index_of: dict[str, int] = field(default_factory=dict)

    @property
    def module_e_m(self) -> float:
        return self.module_short_m if self.orientation == "portrait" else self.module_long_m

    @property
    def module_n_m(self) -> float:
        return self.module_long_m if self.orientation == "portrait" else self.module_short_m

    def __len__(self) -> int:
        return len(self.module_ids)

    def asset(self, m: int) -> dict:
        s = int(self.string_index[m])
        return {
            "module_id": self.module_ids[m],
            "string_id": self.string_ids[s],
            "inverter_id": self.string_inverters[s],
            "block": int(self.block[m]),
            "row": int(self.row[m]),
            "col": int(self.col[m]),
        }

    def geojson(self) -> dict:
        """As-built layout: one Polygon feature per module, WGS84 lon/lat, closed counter-clockwise rings."""
        lat0, lon0 = self.origin.to_wgs84(self.e0, self.n0)
        lat1, lon1 = self.origin.to_wgs84(self.e1, self.n1)
        feats = []
        for m in range(len(self)):
            ring = [
                [round(float(lon0[m]), 9), round(float(lat0[m]), 9)],
                [round(float(lon1[m]), 9), round(float(lat0[m]), 9)],
                [round(float(lon1[m]), 9), round(float(lat1[m]), 9)],
                [round(float(lon0[m]), 9), round(float(lat1[m]), 9)],
                [round(float(lon0[m]), 9), round(float(lat0[m]), 9)],
            ]
            feats.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": self.asset(m),
                }
            )
        return {
            "type": "FeatureCollection",
            "properties": {
                "kind": "pv-plant",
                "origin": {"lat": self.origin.lat, "lon": self.origin.lon, "alt_m": self.origin.alt_m},
                "module": {
                    "orientation": self.orientation,
                    "long_m": self.module_long_m,
                    "short_m": self.module_short_m,
                    "cells": [self.cells_short, self.cells_long],
                    "cell_style": self.cell_style,
                },
                "rows_high": self.rows_high,
            },
            "features": feats,
        }

    def write_geojson(self, path: Path) -> None:
        path.write_text(json.dumps(self.geojson(), separators=(",", ":")), encoding="utf-8")


def build_pv_site(
    rng: np.random.Generator, origin: GeoOrigin, area: tuple[float, float, float, float], margin_m: float
) -> PVSite:
    """Lay out a plant covering ``area`` (e_min, n_min, e_max, n_max) plus ``margin_m`` of ground around it."""
    style = str(rng.choice(["mono", "poly", "halfcut"], p=[0.5, 0.2, 0.3]))
    cells_long = int(rng.choice([10, 12])) if style != "halfcut" else 12
    cells_short = 6
    short = 0.99 + rng.uniform(0.0, 0.15)
    long_ = (1.65 if cells_long == 10 else 1.96) + rng.uniform(-0.02, 0.3)
    orientation = str(rng.choice(["portrait", "landscape"], p=[0.7, 0.3]))
    rows_high = int(rng.choice([2, 3])) if orientation == "portrait" else int(rng.choice([3, 4]))
    mod_e, mod_n = (short, long_) if orientation == "portrait" else (long_, short)
    per_table = int(rng.integers(12, 28)) if orientation == "portrait" else int(rng.integers(8, 16))
    depth = rows_high * mod_n + (rows_high - 1) * MODULE_GAP_M
    pitch = depth * rng.uniform(1.6, 2.3)
    string_len = int(rng.integers(16, 29))
    strings_per_inv = int(rng.integers(8, 20))

    e_min, n_min, e_max, n_max = area
    pe0, pe1 = e_min - margin_m * 0.5, e_max + margin_m * 0.5
    pn0, pn1 = n_min - margin_m * 0.5, n_max + margin_m * 0.5
    extent = (e_min - margin_m, n_min - margin_m, e_max + margin_m, n_max + margin_m)
    # blocks separated by north-south gravel roads
    blocks: list[tuple[float, float]] = []
    e = pe0
    while e < pe1 - 5.0:
        width = rng.uniform(45.0, 90.0)
        blocks.append((e, min(e + width, pe1)))
        e += width + ROAD_WIDTH_M
    roads = [(b1, extent[1], b1 + ROAD_WIDTH_M, extent[3]) for _, b1 in blocks[:-1]]
    # an east-west service road along the south edge when there is room
    if pn0 - extent[1] > ROAD_WIDTH_M + 1.0:
        roads.append((extent[0], pn0 - ROAD_WIDTH_M - 1.0, extent[2], pn0 - 1.0))

    cols: dict[str, list] = {k: [] for k in ("e0", "n0", "e1", "n1", "block", "row", "col")}
    tables = []
    for b, (be0, be1) in enumerate(blocks, start=1):
        tlen = per_table * mod_e + (per_table - 1) * MODULE_GAP_M
        n_tables = max(1, int((be1 - be0 + TABLE_GAP_M) // (tlen + TABLE_GAP_M)))
        top = pn1
        trow = 0
        while top - depth >= pn0 - 1e-6:
            for t in range(n_tables):
                te0 = be0 + t * (tlen + TABLE_GAP_M)
                tables.append((te0, top - depth, te0 + tlen, top))
                for level in range(rows_high):
                    mn1 = top - level * (mod_n + MODULE_GAP_M)
                    for k in range(per_table):
                        me0 = te0 + k * (mod_e + MODULE_GAP_M)
                        cols["e0"].append(me0)
                        cols["e1"].append(me0 + mod_e)
                        cols["n1"].append(mn1)
                        cols["n0"].append(mn1 - mod_n)
                        cols["block"].append(b)
                        cols["row"].append(trow * rows_high + level + 1)
                        cols["col"].append(t * per_table + k + 1)
            top -= pitch
            trow += 1
    arr = {k: np.asarray(v) for k, v in cols.items()}
    n_mod = len(arr["e0"])
    if n_mod == 0:
        raise ValueError(f"PV site area {area} is too small to hold a single table")
    module_ids = [
        f"B{b}-R{r:03d}-M{c:03d}" for b, r, c in zip(arr["block"], arr["row"], arr["col"], strict=True)
    ]
    string_index = np.zeros(n_mod, np.int64)
    string_ids: list[str] = []
    string_inv: list[str] = []
    string_modules: list[np.ndarray] = []
    order = np.lexsort((arr["col"], arr["row"], arr["block"]))
    per_block_count: dict[int, int] = {}
    start = 0
    while start < n_mod:
        m0 = order[start]
        stop = start
        while (
            stop < n_mod
            and stop - start < string_len
            and arr["block"][order[stop]] == arr["block"][m0]
            and arr["row"][order[stop]] == arr["row"][m0]
        ):
            stop += 1
        b = int(arr["block"][m0])
        s = per_block_count.get(b, 0)
        per_block_count[b] = s + 1
        inv = s // strings_per_inv + 1
        string_ids.append(f"B{b}-I{inv:02d}-S{s + 1:03d}")
        string_inv.append(f"B{b}-I{inv:02d}")
        members = order[start:stop]
        string_modules.append(members)
        string_index[members] = len(string_ids) - 1
        start = stop
    site = PVSite(
        origin=origin,
        orientation=orientation,
        module_long_m=long_,
        module_short_m=short,
        cells_long=cells_long * (2 if style == "halfcut" else 1),
        cells_short=cells_short,
        cell_style=style,
        rows_high=rows_high,
        e0=arr["e0"],
        n0=arr["n0"],
        e1=arr["e1"],
        n1=arr["n1"],
        block=arr["block"],
        row=arr["row"],
        col=arr["col"],
        string_index=string_index,
        module_ids=module_ids,
        string_ids=string_ids,
        string_inverters=string_inv,
        string_modules=string_modules,
        tables=np.asarray(tables, np.float64),
        roads=np.asarray(roads, np.float64).reshape(-1, 4),
        extent=extent,
    )
    site.index_of = {mid: i for i, mid in enumerate(module_ids)}
    return site
