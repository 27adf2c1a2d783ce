"""Findings: from a flight's detections to unique, located, graded findings, fault warnings and reports.

Modules (data flow order):

* :mod:`findings.georef` — frame camera from the manifest, pixel → ground (PV) / ray (wind).
* :mod:`findings.layout` — the site's as-built GeoJSON: module polygons (point-in-polygon), turbines.
* :mod:`findings.thermal` — ΔT from radiometric frames.
* :mod:`findings.build` — observations → de-duplicated findings with assets, grades, power loss
  (:func:`findings.build.build_findings`, pure Python).
* :mod:`findings.grading` — IEC TS 62446-3 CoA, wind categories, PV RGB severity, validity, power loss.
* :mod:`findings.trend` — new / persisting / growing / resolved against the previous inspection.
* :mod:`findings.alerts` — fault warnings, webhooks with retries and a sent-ledger.
* :mod:`findings.reports` — HTML, PDF, CSV, GeoJSON, KML, JSON (+ schema), site summary.
* :mod:`findings.api` — :func:`findings.api.process_flight`: the store-level entry point for the pipeline.
* :mod:`findings.score` — scores against a synthetic flight's truth; :mod:`findings.cli` — the commands.
"""
