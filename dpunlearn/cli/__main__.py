"""``python -m dpunlearn.cli``: the ``dpunlearn`` console script."""

import sys

from dpunlearn.cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
