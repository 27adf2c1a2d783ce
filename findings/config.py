"""The findings stage's own settings, read from ``SKYINSPECT_*`` environment variables.

=================================  ===========  ==========================================================
variable                           default      meaning
=================================  ===========  ==========================================================
``SKYINSPECT_WEBHOOK_URLS``        (none)       comma-separated http(s) URLs that fault warnings are POSTed to
``SKYINSPECT_WEBHOOK_ATTEMPTS``    3            attempts per URL and warning (retries on errors and 5xx/429)
``SKYINSPECT_WEBHOOK_BACKOFF_S``   0.5          first retry delay, doubled each attempt
``SKYINSPECT_WEBHOOK_TIMEOUT_S``   5            seconds per HTTP request
``SKYINSPECT_MODULE_POWER_W``      400          PV module power used for power-loss estimates
=================================  ===========  ==========================================================

(They live here because :mod:`skyinspect.config` belongs to the core; they can move into ``Settings`` later.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from findings.grading import DEFAULT_MODULE_POWER_W

PREFIX = "SKYINSPECT_"


class FindingsConfigError(ValueError):
    """A findings setting with an unusable value; the message names the environment variable."""


@dataclass(frozen=True)
class FindingsConfig:
    webhook_urls: tuple[str, ...] = ()
    webhook_attempts: int = 3
    webhook_backoff_s: float = 0.5
    webhook_timeout_s: float = 5.0
    module_power_w: float = DEFAULT_MODULE_POWER_W

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FindingsConfig:
        """Read the variables of the module docstring.

        Raises:
            FindingsConfigError: a URL that is not http(s)://host..., or a number that is not a positive number.
        """
        env = os.environ if environ is None else environ
        urls = tuple(u.strip() for u in env.get(PREFIX + "WEBHOOK_URLS", "").split(",") if u.strip())
        for u in urls:
            parsed = urlparse(u)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise FindingsConfigError(f"{PREFIX}WEBHOOK_URLS: {u!r} is not an http(s) URL")

        def number(name: str, default: float, kind: type) -> float:
            raw = env.get(PREFIX + name)
            if raw is None or raw.strip() == "":
                return default
            try:
                value = kind(raw)
            except ValueError as exc:
                raise FindingsConfigError(f"{PREFIX}{name}: expected a number, got {raw!r}") from exc
            if value <= 0:
                raise FindingsConfigError(f"{PREFIX}{name}: must be positive, got {raw!r}")
            return value

        return cls(
            webhook_urls=urls,
            webhook_attempts=int(number("WEBHOOK_ATTEMPTS", 3, int)),
            webhook_backoff_s=float(number("WEBHOOK_BACKOFF_S", 0.5, float)),
            webhook_timeout_s=float(number("WEBHOOK_TIMEOUT_S", 5.0, float)),
            module_power_w=float(number("MODULE_POWER_W", DEFAULT_MODULE_POWER_W, float)),
        )
