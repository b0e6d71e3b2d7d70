"""``python -m papg_bench``: the same command line as the ``papg-bench`` script."""

import sys

from papg_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
