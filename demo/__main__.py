"""`python -m demo`: see demo.driver."""

import sys

from demo.driver import main

if __name__ == "__main__":
    sys.exit(main())
