"""Make ultralytics run fully offline: no weights, fonts, telemetry, hub or pip installs at run time.

Call :func:`ensure_offline` before anything imports ``ultralytics`` (``train``, ``evaluate`` and the torch backend
do). What it does, and why:

* ``YOLO_CONFIG_DIR`` → ``<data_dir>/ultralytics`` (unless the caller already set it): ultralytics writes its
  ``settings.json`` there, so nothing lands in ``~/.config`` and a read-only home still works.
* ``YOLO_OFFLINE=1``: ``ultralytics.utils.ONLINE`` becomes ``False`` without a DNS probe, which disables telemetry
  (``utils/events.py``), Sentry and the update check.
* ``YOLO_AUTOINSTALL=0``: ultralytics never ``pip install``-s a missing requirement.
* Fonts: ``check_dataset`` and the plotters call ``utils/checks.py::check_font("Arial.ttf")``, which looks in the
  config dir, then matplotlib's font list, and otherwise issues a HEAD request and downloads the file. Arial is not
  on this machine, so we copy matplotlib's bundled DejaVu Sans into the config dir under the names ultralytics asks
  for (``Arial.ttf``, ``Arial.Unicode.ttf``). Plots render in DejaVu Sans; nothing is fetched.
* Settings: ``sync`` (telemetry) and every experiment-tracker integration are switched off, and the runs, weights
  and datasets dirs point inside the config dir.
* AMP: ``check_amp`` only runs on CUDA and then loads ``yolo26n.pt`` (a download). :mod:`detection.train` trains with
  ``amp=False`` by default and, when AMP is asked for on CUDA, passes ``amp="bf16"``, which skips that check.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from skyinspect.config import Settings

logger = logging.getLogger(__name__)

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
"""Font files ultralytics' ``check_font`` asks for (ASCII and non-ASCII class names)."""

_DISABLED_SETTINGS = {
    "sync": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "vscode_msg": False,
    "openvino_msg": False,
}

_configured: Path | None = None


def default_config_dir(settings: Settings | None = None) -> Path:
    """Where ultralytics keeps its settings and fonts: ``$YOLO_CONFIG_DIR`` if set, else ``<data_dir>/ultralytics``."""
    env_dir = os.environ.get("YOLO_CONFIG_DIR")
    if env_dir:
        return Path(env_dir).expanduser()
    data_dir = settings.data_dir if settings is not None else Settings().data_dir
    return Path(data_dir) / "ultralytics"


def _local_font() -> Path:
    """matplotlib's bundled DejaVu Sans: the one TrueType font guaranteed to be installed with our stack."""
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not font.is_file():
        raise FileNotFoundError(f"matplotlib's bundled font {font} is missing; reinstall matplotlib")
    return font


def install_fonts(user_config_dir: Path) -> list[Path]:
    """Copy a local font into ``user_config_dir`` under the names ultralytics would otherwise download.

    Returns:
        The font files now present.
    """
    user_config_dir.mkdir(parents=True, exist_ok=True)
    source = _local_font()
    out = []
    for name in FONT_NAMES:
        target = user_config_dir / name
        if not target.is_file():
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        out.append(target)
    return out


def restore_pil_open() -> None:
    """Undo ultralytics' process-wide replacement of ``PIL.Image.open``.

    On import, ``ultralytics.utils.patches`` swaps ``PIL.Image.open`` for a wrapper that, when Pillow cannot identify
    a file, tries to install and import ``pi-heif``. Offline that turns "not an image" into ``ModuleNotFoundError``
    for every other Pillow user in the process (ingest's file checks in a pipeline worker, for one). skyinspect
    reads no HEIF, so Pillow's own function goes back.
    """
    import importlib

    from PIL import Image

    patches = importlib.import_module("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is not original:
        Image.open = original


def ensure_offline(settings: Settings | None = None, config_dir: Path | None = None) -> Path:
    """Configure the environment so ultralytics never reaches the network, then import and tune it.

    Safe to call many times. If ultralytics was imported before this call, the environment variables come too late
    for its import-time constants; we then patch those constants (``ONLINE``) and put the fonts in the config dir it
    actually uses, and log that the config dir could not be moved.

    Args:
        settings: project settings (for ``data_dir``); defaults are used when omitted.
        config_dir: explicit ``YOLO_CONFIG_DIR`` (wins over the environment and settings).

    Returns:
        The ultralytics user config dir in use (``<YOLO_CONFIG_DIR>/Ultralytics``).
    """
    global _configured
    already_imported = "ultralytics" in sys.modules
    root = Path(config_dir) if config_dir is not None else default_config_dir(settings)
    if not already_imported:
        os.environ["YOLO_CONFIG_DIR"] = str(root)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    if not already_imported:
        install_fonts(root / "Ultralytics")

    import importlib

    import ultralytics.utils as uu

    restore_pil_open()
    user_dir = Path(uu.USER_CONFIG_DIR)
    if _configured == user_dir:
        return user_dir
    if already_imported and user_dir != root / "Ultralytics":
        logger.info("ultralytics was imported before offline set-up; it keeps its config dir %s", user_dir)
    install_fonts(user_dir)
    # Import-time constants computed before YOLO_OFFLINE was set (they matter when ultralytics came first).
    uu.ONLINE = False
    for name in ("ultralytics.utils.checks", "ultralytics.utils.events"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "ONLINE"):
            module.ONLINE = False
        if hasattr(module, "AUTOINSTALL"):
            module.AUTOINSTALL = False
        collector = getattr(module, "events", None)
        if collector is not None and hasattr(collector, "enabled"):
            collector.enabled = False
    changes = dict(_DISABLED_SETTINGS)
    changes.update(
        runs_dir=str(user_dir / "runs"),
        weights_dir=str(user_dir / "weights"),
        datasets_dir=str(user_dir / "datasets"),
    )
    if any(uu.SETTINGS.get(k) != v for k, v in changes.items()):
        uu.SETTINGS.update(**changes)
    _configured = user_dir
    logger.debug("ultralytics offline: config dir %s", user_dir)
    return user_dir
