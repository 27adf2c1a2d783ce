"""Grading: each finding's grade with its reason in words, its power loss, and the inspection's validity.

PV thermal — IEC TS 62446-3 class of abnormality (CoA)
    CoA 1 = no abnormality / not significant, CoA 2 = thermal abnormality (repair when convenient),
    CoA 3 = safety-relevant thermal abnormality (act now). IEC TS 62446-3:2017 Annex C describes the patterns
    and gives example ΔT limits; it leaves the final limits to the inspection contract. The table used here is
    an engineering reading of that annex (check it against your contract):

    ====================  =========================  ====================  ===================================
    pattern (class)       CoA 1                      CoA 2                 CoA 3
    ====================  =========================  ====================  ===================================
    hotspot_single_cell   ΔT < 10 K                  10 K ≤ ΔT < 20 K      ΔT ≥ 20 K (hot spot can damage the
                                                                           back sheet/glass; fire risk)
    hotspot_multi_cell    ΔT < 10 K                  10 K ≤ ΔT < 20 K      ΔT ≥ 20 K
    junction_box          ΔT < 10 K                  10 K ≤ ΔT < 20 K      ΔT ≥ 20 K (failing connection: arc and
                                                                           fire risk)
    bypass_diode          —                          any ΔT (substring     ΔT ≥ 20 K (diode overheating)
                                                     bypassed: 1/3 loss)
    pid                   —                          any ΔT                —
    module_offline        —                          —                     always (open circuit: DC voltage on
                                                                           an unloaded module, no production)
    string_offline        —                          —                     always (whole string disconnected)
    ====================  =========================  ====================  ===================================

    An area pattern (module offline, string offline, bypass diode) whose area ΔT is below
    :data:`MIN_AREA_DELTA_T_K` is no abnormality at all: :mod:`findings.checks` suppresses it.

    ΔT is the defect's maximum against the median of the normal (defect-free) module pixels around it, measured
    in the radiometric frame. The CoA uses the measured ΔT (the standard's classes refer to the conditions of
    the inspection); a ΔT normalised to 1000 W/m² by linear scaling, ``ΔT * 1000 / G``, is reported beside it
    and used to compare inspections (the temperature rise of a resistive fault grows roughly linearly with the
    current, i.e. with irradiance — an approximation, stated as such in every report).

Wind blades — category 1 (cosmetic) to 5 (not safe to operate)
    ==========================  ==============================================================================
    class                       category
    ==========================  ==============================================================================
    contamination               1 (cosmetic; clean at the next service)
    vortex_generator_missing    2 (aerodynamic performance)
    leading_edge_erosion        2; 3 when ≥ 1.0 m long; +1 in the outer third of the blade (tip speed)
    surface_damage              2; 3 when ≥ 0.3 m; +1 in the outer third
    crack                       3; 4 when ≥ 0.3 m; 5 when ≥ 1.0 m (structural)
    lightning_damage            4; 5 when ≥ 0.3 m (receptor/laminate damage: stop and inspect)
    ==========================  ==============================================================================

PV RGB — severity 1 (minor) to 3 (major) from class and size
    soiling 1 (2 when ≥ 0.2 m), snail_trail 1 (2 when ≥ 0.3 m), vegetation_shading 2 (3 when ≥ 0.5 m),
    delamination 2 (3 when ≥ 0.4 m), glass_breakage 3, missing_module 3.

Power loss (estimate, W) — module power ``module_power_w`` (default 400 W): cell hotspot 3 % of the module
(33 % when ΔT ≥ 20 K: its bypass diode likely conducts), multi-cell 10 % (33 % when ΔT ≥ 20 K), substring
(bypass diode) 33 %, PID 30 %, module offline 100 %, string offline 100 % of every module of the string,
junction box 0 % (33 % when ΔT ≥ 20 K); RGB: shaded fraction of the module area (soiling, vegetation, snail
trails, delamination, capped at 33 % — a bypass diode limits it), broken glass 10 %, missing module 100 %.
Wind: not estimated (needs the power curve and wind climate).

Inspection validity (IEC TS 62446-3 §5 conditions for a thermographic inspection): irradiance in the module
plane ≥ 600 W/m², wind ≤ 28 km/h (7.8 m/s), cloud cover ≤ 2 okta. A missing value makes the inspection not
valid ("not recorded").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detection.taxonomy import Domain, by_name

COA_THRESHOLDS_K = (10.0, 20.0)
MIN_AREA_DELTA_T_K = 1.0
"""The least area ΔT (median of the pattern's module pixels against the normal modules around it) at which an
area pattern — module offline, string offline, bypassed substring — is a thermal abnormality. Such an area
turns the light it does not convert into heat: about η·G / U warmer than its producing neighbours (η ≈ 0.2,
U ≈ 25 + 6.8·wind W/m²K: ≈ 1.5 K at the 600 W/m² and 7.8 m/s limits of a valid inspection, 3–8 K in calm sun).
Healthy modules of one frame lie within a few tenths of a kelvin of each other; below 1 K nothing marks the area
as abnormal (:mod:`findings.checks` suppresses such findings as not confirmed by radiometry)."""
MIN_IRRADIANCE_W_M2 = 600.0
MAX_WIND_M_S = 28.0 / 3.6
MAX_CLOUD_OKTA = 2
DEFAULT_MODULE_POWER_W = 400.0

SEVERITY_ORDER = ("minor", "moderate", "major", "critical")


@dataclass(frozen=True)
class Grade:
    scheme: str
    """``iec-62446-3`` (value = CoA 1..3), ``wind-category`` (1..5), ``pv-rgb-size`` (1..3) or ``ungraded``."""
    value: int | None
    severity: str
    """Unified level for counts and colours: minor, moderate, major, critical (or ``ungraded``)."""
    reason: str
    critical: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "value": self.value,
            "label": self.label,
            "severity": self.severity,
            "reason": self.reason,
            "critical": self.critical,
        }

    @property
    def label(self) -> str:
        if self.value is None:
            return "ungraded"
        return {"iec-62446-3": "CoA {}", "wind-category": "Category {}", "pv-rgb-size": "Severity {}"}.get(
            self.scheme, "{}"
        ).format(self.value)


def ungraded(reason: str) -> Grade:
    return Grade("ungraded", None, "ungraded", reason)


def coa(cls: str, delta_t_k: float | None) -> Grade:
    """IEC TS 62446-3 class of abnormality for a PV thermal pattern (table in the module docstring)."""
    lo, hi = COA_THRESHOLDS_K
    if cls == "string_offline":
        return Grade("iec-62446-3", 3, "critical", "string offline: a whole string is disconnected", True)
    if cls == "module_offline":
        return Grade(
            "iec-62446-3", 3, "critical", "module offline: open circuit, uniformly warm, no production", True
        )
    if delta_t_k is None:
        return ungraded(f"{cls}: no radiometric ΔT, so no IEC TS 62446-3 class")
    dt = float(delta_t_k)
    if cls == "pid":
        return Grade("iec-62446-3", 2, "major", f"PID pattern (ΔT {dt:.1f} K): thermal abnormality")
    if cls == "bypass_diode":
        if dt >= hi:
            return Grade("iec-62446-3", 3, "critical", f"substring warm with ΔT {dt:.1f} K ≥ {hi:g} K", True)
        return Grade(
            "iec-62446-3", 2, "major", f"substring bypassed (ΔT {dt:.1f} K): a third of the module lost"
        )
    what = {"junction_box": "junction box", "hotspot_multi_cell": "multi-cell hotspot"}.get(
        cls, "cell hotspot"
    )
    if dt >= hi:
        return Grade(
            "iec-62446-3", 3, "critical", f"{what} with ΔT {dt:.1f} K ≥ {hi:g} K: safety relevant", True
        )
    if dt >= lo:
        return Grade("iec-62446-3", 2, "major", f"{what} with ΔT {dt:.1f} K in [{lo:g}, {hi:g}) K")
    return Grade("iec-62446-3", 1, "minor", f"{what} with ΔT {dt:.1f} K < {lo:g} K: not yet significant")


def coa_next_threshold(cls: str, delta_t_k: float) -> float | None:
    """The ΔT at which the CoA of ``cls`` goes up from the current ΔT, or None when it cannot."""
    if cls in ("hotspot_single_cell", "hotspot_multi_cell", "junction_box"):
        for t in COA_THRESHOLDS_K:
            if delta_t_k < t:
                return t
    if cls == "bypass_diode" and delta_t_k < COA_THRESHOLDS_K[1]:
        return COA_THRESHOLDS_K[1]
    return None


WIND_SIZE_STEPS: dict[str, tuple[int, tuple[float, ...]]] = {
    "contamination": (1, ()),
    "vortex_generator_missing": (2, ()),
    "leading_edge_erosion": (2, (1.0,)),
    "surface_damage": (2, (0.3,)),
    "crack": (3, (0.3, 1.0)),
    "lightning_damage": (4, (0.3,)),
}
OUTER_THIRD_CLASSES = ("leading_edge_erosion", "surface_damage")


def wind_category(
    cls: str, size_m: float | None, radius_m: float | None, blade_length_m: float | None
) -> Grade:
    """Blade damage category 1..5 (table in the module docstring)."""
    if cls not in WIND_SIZE_STEPS:
        return ungraded(f"no wind grading rule for class {cls!r}")
    base, steps = WIND_SIZE_STEPS[cls]
    cat = base
    words = [f"{cls.replace('_', ' ')}: base category {base}"]
    if size_m is not None:
        bumps = sum(1 for s in steps if size_m >= s)
        if bumps:
            cat += bumps
            words.append(f"+{bumps} for its size {size_m:.2f} m (≥ {steps[bumps - 1]:g} m)")
    elif steps:
        words.append("size unknown")
    if cls in OUTER_THIRD_CLASSES and radius_m is not None and blade_length_m:
        if radius_m / blade_length_m > 2 / 3:
            cat += 1
            words.append(f"+1 in the outer third (r = {radius_m:.1f} of {blade_length_m:.1f} m)")
    cat = min(cat, 5)
    sev = {1: "minor", 2: "moderate", 3: "major", 4: "critical", 5: "critical"}[cat]
    return Grade("wind-category", cat, sev, "; ".join(words), cat >= 4)


def wind_next_size(cls: str, size_m: float) -> float | None:
    steps = WIND_SIZE_STEPS.get(cls, (0, ()))[1]
    for s in steps:
        if size_m < s:
            return s
    return None


RGB_RULES: dict[str, tuple[int, float | None]] = {
    "soiling": (1, 0.2),
    "snail_trail": (1, 0.3),
    "vegetation_shading": (2, 0.5),
    "delamination": (2, 0.4),
    "glass_breakage": (3, None),
    "missing_module": (3, None),
}


def rgb_severity(cls: str, size_m: float | None) -> Grade:
    """PV RGB severity 1..3 from class and size."""
    if cls not in RGB_RULES:
        return ungraded(f"no RGB grading rule for class {cls!r}")
    base, step = RGB_RULES[cls]
    value, reason = base, f"{cls.replace('_', ' ')}: base severity {base}"
    if step is not None and size_m is not None and size_m >= step:
        value = min(3, base + 1)
        reason += f"; +1 for its size {size_m:.2f} m (≥ {step:g} m)"
    sev = {1: "minor", 2: "moderate", 3: "major"}[value]
    return Grade("pv-rgb-size", value, sev, reason)


def grade(
    dom: Domain,
    cls: str,
    *,
    delta_t_k: float | None = None,
    size_m: float | None = None,
    radius_m: float | None = None,
    blade_length_m: float | None = None,
) -> Grade:
    """The grade of a finding of ``cls`` in ``dom``."""
    if dom == Domain.PV_THERMAL:
        return coa(cls, delta_t_k)
    if dom == Domain.WIND:
        return wind_category(cls, size_m, radius_m, blade_length_m)
    return rgb_severity(cls, size_m)


def power_loss_w(
    dom: Domain,
    cls: str,
    *,
    module_power_w: float,
    delta_t_k: float | None = None,
    size_m: float | None = None,
    module_area_m2: float | None = None,
    string_modules: int | None = None,
) -> tuple[float | None, str]:
    """(estimated loss in W or None, how it was estimated) — rules in the module docstring."""
    if dom == Domain.WIND:
        return None, "not estimated for blades (needs the power curve and wind climate)"
    hot = delta_t_k is not None and delta_t_k >= COA_THRESHOLDS_K[1]
    affected = by_name(dom, cls).affected
    if dom == Domain.PV_THERMAL:
        if cls == "string_offline":
            if not string_modules:
                return None, "string offline, but the string's module count is unknown (no layout)"
            return (
                module_power_w * string_modules,
                f"{string_modules} modules of the string × {module_power_w:g} W",
            )
        frac, why = {
            "hotspot_single_cell": (0.33, "bypass diode likely conducting") if hot else (0.03, "one cell"),
            "hotspot_multi_cell": (0.33, "bypass diode likely conducting")
            if hot
            else (0.10, "several cells"),
            "junction_box": (0.33, "overheating diode/connection")
            if hot
            else (0.0, "no production loss yet"),
            "bypass_diode": (1 / 3, "one substring bypassed"),
            "pid": (0.30, "PID degradation"),
            "module_offline": (1.0, "module not producing"),
        }.get(cls, (0.0, f"no rule for {affected}"))
        return module_power_w * frac, f"{frac:.0%} of {module_power_w:g} W ({why})"
    if cls == "missing_module":
        return module_power_w, "module missing"
    if cls == "glass_breakage":
        return module_power_w * 0.10, f"10% of {module_power_w:g} W (broken glass: moisture, cell damage)"
    if size_m is None or not module_area_m2:
        return None, "size or module area unknown"
    frac = min(1 / 3, (size_m * size_m) / module_area_m2)
    return (
        module_power_w * frac,
        f"shaded fraction {frac:.0%} of {module_power_w:g} W (capped at a substring)",
    )


def inspection_validity(conditions: dict[str, Any] | None) -> dict[str, Any]:
    """IEC TS 62446-3 validity of a thermographic inspection: ``{"valid", "reasons", "checks"}``."""
    cond = conditions or {}
    checks = []

    def check(key: str, label: str, ok_fn, limit: str, unit: str) -> None:
        value = cond.get(key)
        if value is None:
            checks.append(
                {"field": key, "value": None, "limit": limit, "ok": False, "reason": f"{label} not recorded"}
            )
            return
        ok = bool(ok_fn(float(value)))
        reason = "" if ok else f"{label} {float(value):g} {unit} does not meet {limit}"
        checks.append({"field": key, "value": value, "limit": limit, "ok": ok, "reason": reason})

    check("irradiance_w_m2", "irradiance", lambda v: v >= MIN_IRRADIANCE_W_M2, "≥ 600 W/m²", "W/m²")
    check("wind_speed_m_s", "wind speed", lambda v: v <= MAX_WIND_M_S, "≤ 28 km/h (7.8 m/s)", "m/s")
    check("cloud_cover_okta", "cloud cover", lambda v: v <= MAX_CLOUD_OKTA, "≤ 2 okta", "okta")
    reasons = [c["reason"] for c in checks if not c["ok"]]
    return {"valid": not reasons, "reasons": reasons, "checks": checks, "standard": "IEC TS 62446-3"}


def normalise_delta_t(delta_t_k: float | None, irradiance_w_m2: float | None) -> float | None:
    """ΔT scaled linearly to 1000 W/m² (None without ΔT or irradiance)."""
    if delta_t_k is None or not irradiance_w_m2 or irradiance_w_m2 <= 0:
        return None
    return float(delta_t_k) * 1000.0 / float(irradiance_w_m2)


def severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else -1
