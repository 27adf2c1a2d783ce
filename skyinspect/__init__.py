"""skyinspect: cross-cutting pieces (settings, logging, the CLI entry point). Stages live in their own packages."""

__all__ = ["__version__"]
__version__ = "0.1.0"
