"""wbl-assistant: grounded, cited answers from Illinois work-based learning guidance documents."""

from .config import Settings

__all__ = ["Settings"]
