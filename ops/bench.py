"""`make bench`: the cost of supervision against raw jupyter_client and nbclient.

Not yet: the benchmark is its own issue. This stub keeps `make bench` honest until then.
"""

from __future__ import annotations

import sys


def main() -> int:
    print("nb bench: not yet (the benchmark against jupyter_client and nbclient comes next)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
