"""Quick mode: smaller problems so the whole book builds and tests fast in CI.

The published website is built with the realistic defaults; set
``BOOK_QUICK=1`` to scale every page down (``make test`` does).
"""

import os

ENV_VAR = "BOOK_QUICK"


def enabled():
    """True when the ``BOOK_QUICK`` environment variable asks for quick mode."""
    return os.environ.get(ENV_VAR, "").strip().lower() not in {"", "0", "false", "no"}


def pick(*, full, quick):
    """Return ``quick`` in quick mode and ``full`` otherwise.

    Both are keywords, so the call reads as the choice it is. Pages make their
    picks in one hidden cell of problem sizes, away from the code readers study.

    Examples
    --------
    >>> sizes = pick(full=[10**k for k in range(1, 8)], quick=[10, 1000, 10**5])
    """
    return quick if enabled() else full
