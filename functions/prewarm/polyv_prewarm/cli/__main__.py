"""``python -m polyv_prewarm.cli``."""

from . import entry

entry()
