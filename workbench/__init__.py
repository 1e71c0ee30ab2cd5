"""workbench: train and inspect data-driven weather models across domains and resolutions."""

from .errors import WorkbenchError

__all__ = ["WorkbenchError"]
__version__ = "0.1.0"
