"""``python -m envspec.smoke``: generate one image, check it, write smoke.json, print one line."""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

if __name__ == "__main__":
    import sys

    from envspec.smoke.cli import main

    sys.exit(main(started=_STARTED))
