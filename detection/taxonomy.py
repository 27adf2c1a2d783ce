"""The defect taxonomy: the one source of truth for classes, their ids, names, colours and grading rules.

Datasets (synthetic flights, imports), models (their ONNX metadata), findings and reports all read this module.
Class ids are per domain and stable: a domain's classes are numbered in the order listed here, and new classes
are only ever appended (bump :data:`TAXONOMY_VERSION`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TAXONOMY_VERSION = "1.0"


class Domain(StrEnum):
    """An imaging domain; each has its own model and class list."""

    PV_THERMAL = "pv-thermal"
    PV_RGB = "pv-rgb"
    WIND = "wind-rgb"


class SeverityRule(StrEnum):
    """How a finding of a class is graded (implemented by the findings stage)."""

    IEC_62446_3 = "iec-62446-3"
    """PV thermal: class of abnormality (CoA 1/2/3) from pattern and ΔT, per IEC TS 62446-3."""
    PV_RGB_SIZE = "pv-rgb-size"
    """PV RGB: severity from class and affected area."""
    WIND_CATEGORY = "wind-category"
    """Wind blades: category 1 (cosmetic) to 5 (not safe to operate) from class, size and radial position."""


@dataclass(frozen=True)
class DefectClass:
    """One defect class of one domain."""

    domain: Domain
    id: int
    name: str
    """Stable machine name (snake_case); this is what model metadata and labels carry."""
    display_name: str
    colour: str
    """Hex RGB colour used in reports, galleries and annotated thumbnails."""
    severity_rule: SeverityRule
    affected: str
    """What the defect takes out of production: cell, cells, substring, module, string, or surface."""
    delta_t_range: tuple[float, float] | None = None
    """Typical ΔT in kelvin against the module's normal median (thermal classes; IEC TS 62446-3 Annex C)."""
    size_m: tuple[float, float] = (0.05, 0.5)
    """Typical physical extent (longest side) in metres, as drawn by the synthetic generator."""
    description: str = ""

    @property
    def colour_bgr(self) -> tuple[int, int, int]:
        value = self.colour.lstrip("#")
        r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
        return b, g, r


def _classes(domain: Domain, rule: SeverityRule, rows: list[tuple]) -> tuple[DefectClass, ...]:
    return tuple(
        DefectClass(domain=domain, id=i, severity_rule=rule, **row) for i, row in enumerate(dict(r) for r in rows)
    )


_PV_THERMAL = _classes(
    Domain.PV_THERMAL,
    SeverityRule.IEC_62446_3,
    [
        (("name", "hotspot_single_cell"), ("display_name", "Hotspot (single cell)"), ("colour", "#ff3b30"),
         ("affected", "cell"), ("delta_t_range", (8.0, 45.0)), ("size_m", (0.15, 0.17)),
         ("description", "One cell markedly warmer: cell crack, shading or mismatch.")),
        (("name", "hotspot_multi_cell"), ("display_name", "Hotspot (multiple cells)"), ("colour", "#ff9500"),
         ("affected", "cells"), ("delta_t_range", (6.0, 30.0)), ("size_m", (0.3, 0.7)),
         ("description", "A patch of several warm cells.")),
        (("name", "bypass_diode"), ("display_name", "Bypass diode / substring"), ("colour", "#ffcc00"),
         ("affected", "substring"), ("delta_t_range", (3.0, 10.0)), ("size_m", (0.55, 1.7)),
         ("description", "One third of the module uniformly warmer: an active bypass diode or open substring.")),
        (("name", "module_offline"), ("display_name", "Module offline"), ("colour", "#af52de"),
         ("affected", "module"), ("delta_t_range", (2.0, 8.0)), ("size_m", (1.7, 1.75)),
         ("description", "The whole module uniformly warmer: open circuit, not delivering power.")),
        (("name", "string_offline"), ("display_name", "String offline"), ("colour", "#ff2d55"),
         ("affected", "string"), ("delta_t_range", (2.0, 8.0)), ("size_m", (5.0, 25.0)),
         ("description", "A row of modules of one string uniformly warmer: string disconnected.")),
        (("name", "pid"), ("display_name", "PID pattern"), ("colour", "#5ac8fa"),
         ("affected", "module"), ("delta_t_range", (2.0, 6.0)), ("size_m", (1.0, 1.75)),
         ("description", "Potential-induced degradation: a patchwork of warm cells, strongest near the frame.")),
        (("name", "junction_box"), ("display_name", "Junction-box heating"), ("colour", "#34c759"),
         ("affected", "module"), ("delta_t_range", (5.0, 30.0)), ("size_m", (0.12, 0.2)),
         ("description", "A hot spot at the junction box: poor connection or failed diode.")),
    ],
)

_PV_RGB = _classes(
    Domain.PV_RGB,
    SeverityRule.PV_RGB_SIZE,
    [
        (("name", "soiling"), ("display_name", "Soiling / bird droppings"), ("colour", "#a2845e"),
         ("affected", "cells"), ("size_m", (0.05, 0.4)),
         ("description", "Dirt, dust or bird droppings shading part of the module.")),
        (("name", "glass_breakage"), ("display_name", "Cracked or broken glass"), ("colour", "#ff3b30"),
         ("affected", "module"), ("size_m", (0.2, 1.0)),
         ("description", "Cracked or shattered front glass.")),
        (("name", "vegetation_shading"), ("display_name", "Vegetation shading"), ("colour", "#34c759"),
         ("affected", "cells"), ("size_m", (0.2, 1.0)),
         ("description", "Plants growing over the lower edge of the module.")),
        (("name", "snail_trail"), ("display_name", "Snail trails"), ("colour", "#8e8e93"),
         ("affected", "cells"), ("size_m", (0.1, 0.5)),
         ("description", "Dark discoloured lines along micro-cracks.")),
        (("name", "delamination"), ("display_name", "Delamination / discoloration"), ("colour", "#ffcc00"),
         ("affected", "cells"), ("size_m", (0.1, 0.6)),
         ("description", "Yellowed or bubbled encapsulant.")),
        (("name", "missing_module"), ("display_name", "Missing module"), ("colour", "#af52de"),
         ("affected", "module"), ("size_m", (1.7, 1.75)),
         ("description", "A gap in the table where a module should be.")),
    ],
)

_WIND = _classes(
    Domain.WIND,
    SeverityRule.WIND_CATEGORY,
    [
        (("name", "leading_edge_erosion"), ("display_name", "Leading-edge erosion"), ("colour", "#ff9500"),
         ("affected", "surface"), ("size_m", (0.2, 2.0)),
         ("description", "Worn coating and pitting along the leading edge.")),
        (("name", "crack"), ("display_name", "Crack"), ("colour", "#ff3b30"),
         ("affected", "surface"), ("size_m", (0.1, 1.5)),
         ("description", "A crack in the laminate or coating.")),
        (("name", "lightning_damage"), ("display_name", "Lightning damage"), ("colour", "#af52de"),
         ("affected", "surface"), ("size_m", (0.05, 0.5)),
         ("description", "Burn marks or a blown-out area near a receptor or the tip.")),
        (("name", "surface_damage"), ("display_name", "Surface damage / paint-off"), ("colour", "#ffcc00"),
         ("affected", "surface"), ("size_m", (0.05, 0.6)),
         ("description", "Chipped paint or gelcoat exposing the laminate.")),
        (("name", "contamination"), ("display_name", "Dirt / contamination"), ("colour", "#a2845e"),
         ("affected", "surface"), ("size_m", (0.1, 1.0)),
         ("description", "Dirt, insects or oil on the blade surface.")),
        (("name", "vortex_generator_missing"), ("display_name", "Missing vortex-generator teeth"),
         ("colour", "#5ac8fa"), ("affected", "surface"), ("size_m", (0.05, 0.3)),
         ("description", "Gaps in a row of vortex-generator fins.")),
    ],
)

CLASSES: dict[Domain, tuple[DefectClass, ...]] = {
    Domain.PV_THERMAL: _PV_THERMAL,
    Domain.PV_RGB: _PV_RGB,
    Domain.WIND: _WIND,
}


class TaxonomyError(KeyError):
    """An unknown domain or class; the message lists what is known."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def domain(value: str | Domain) -> Domain:
    """Parse a domain name (``pv-thermal``, ``pv-rgb``, ``wind-rgb``; ``wind`` is accepted as an alias)."""
    if isinstance(value, Domain):
        return value
    text = str(value).strip().lower()
    if text == "wind":
        text = Domain.WIND.value
    try:
        return Domain(text)
    except ValueError:
        known = ", ".join(d.value for d in Domain)
        raise TaxonomyError(f"unknown domain {value!r}; known domains: {known}") from None


def classes(dom: str | Domain) -> tuple[DefectClass, ...]:
    """The classes of a domain, in class-id order."""
    return CLASSES[domain(dom)]


def class_names(dom: str | Domain) -> list[str]:
    """Class names in class-id order: what YOLO data.yaml ``names`` and model metadata carry."""
    return [c.name for c in classes(dom)]


def by_name(dom: str | Domain, name: str) -> DefectClass:
    for c in classes(dom):
        if c.name == name:
            return c
    known = ", ".join(class_names(dom))
    raise TaxonomyError(f"unknown class {name!r} in domain {domain(dom).value}; known classes: {known}")


def by_id(dom: str | Domain, class_id: int) -> DefectClass:
    cls = classes(dom)
    if not 0 <= int(class_id) < len(cls):
        raise TaxonomyError(f"class id {class_id} out of range for domain {domain(dom).value} (0..{len(cls) - 1})")
    return cls[int(class_id)]


def domain_of_names(names: list[str] | dict[int, str]) -> Domain:
    """The domain whose class list equals ``names`` (a model's or dataset's), or raise TaxonomyError."""
    listed = list(names.values()) if isinstance(names, dict) else list(names)
    for dom in Domain:
        if class_names(dom) == listed:
            return dom
    raise TaxonomyError(f"class names {listed} match no domain of taxonomy {TAXONOMY_VERSION}")
