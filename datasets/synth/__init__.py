"""Synthetic inspection flights with exact ground truth (``skyinspect synth``).

Kinds: ``pv-thermal`` (640×512 radiometric TIFF, centikelvin), ``pv-rgb`` (4000×3000 JPEG) and ``wind-rgb``
(4000×3000 JPEG blade sweeps). Output layout: ``flight/`` (images + conditions.json), ``truth/`` (YOLO labels,
frames.json, defects.json, cameras.json), ``site/layout.geojson``, ``previews/`` (thermal) and ``synth.json``.

Projection convention (what a later stage must invert; details in :mod:`datasets.synth.geo`):

* Local frame: East-North-Up metres about the site origin (lat0, lon0; ground at u = 0, ground altitude
  ``alt0`` AMSL), converted to WGS84 with the WGS84 radii of curvature at lat0 (tangent-plane approximation).
* Camera: ideal pinhole, no distortion, ``f`` = CalibratedFocalLength (px), principal point
  (CalibratedOpticalCenterX, CalibratedOpticalCenterY) = ((W-1)/2, (H-1)/2), pixel centres at integers.
* Pose: camera centre = EXIF/XMP GPS (lat, lon), height above the site ground = RelativeAltitude
  (AbsoluteAltitude = alt0 + RelativeAltitude = EXIF GPSAltitude). Attitude = GimbalYawDegree (heading of the
  optical axis' horizontal direction, clockwise from north; for a nadir frame the heading of the image's *up*
  direction), GimbalPitchDegree (-90 = nadir, 0 = horizon), GimbalRollDegree (about the optical axis, positive
  turns image-up toward image-right). PV frames are nadir within about ±1° (the small tilt is real and recorded).
  Flight* angles describe the aircraft body and do not affect the image.
* Ground truth boxes are pixel edges ``[x1, y1, x2, y2)`` in the frame, taken from each defect's own mask warped
  with exactly this projection; ``truth/cameras.json`` repeats each frame's pose in local metres.
"""

from datasets.synth.generate import FlightSummary, SynthFlight, build_flight, generate_flight

__all__ = ["FlightSummary", "SynthFlight", "build_flight", "generate_flight"]
