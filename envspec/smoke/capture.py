"""Capture the load warnings of diffusers and transformers (they only warn when weights are missing)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Final

LIBRARY_LOGGERS: Final = ("diffusers", "transformers")


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a broken log call must not break the smoke test
            self.messages.append(str(record.msg))


@contextlib.contextmanager
def load_warnings() -> Iterator[list[str]]:
    """Yield a list that fills with every WARNING+ message the libraries log inside the block.

    The library loggers are forced to WARNING for the duration, so a user's
    ``DIFFUSERS_VERBOSITY=error`` cannot hide a missing weight from the check.
    """
    collector = _Collector()
    saved: list[tuple[logging.Logger, int]] = []
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        if logger.getEffectiveLevel() > logging.WARNING:
            logger.setLevel(logging.WARNING)
        logger.addHandler(collector)
    try:
        yield collector.messages
    finally:
        for logger, level in saved:
            logger.removeHandler(collector)
            logger.setLevel(level)


#: Library notices that say nothing about this environment's ability to make an image: transformers
#: announces, per image-processor class, that it uses its Pillow backend because torchvision (which
#: the SD runtime does not need) is absent. Dropped at their logger, before diffusers is imported.
IRRELEVANT_NOTICES: Final = {"transformers.utils.import_utils": ("requires torchvision (not installed)",)}


class _DropNotices(logging.Filter):
    def __init__(self, phrases: tuple[str, ...]) -> None:
        super().__init__()
        self.phrases = phrases

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(phrase in message for phrase in self.phrases)


def drop_irrelevant_notices() -> None:
    """Install the filters (once) on the loggers that print :data:`IRRELEVANT_NOTICES`."""
    for name, phrases in IRRELEVANT_NOTICES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotices) for f in logger.filters):
            logger.addFilter(_DropNotices(phrases))
