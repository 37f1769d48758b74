"""``python -m doctor`` runs the same CLI as ``raydoctor``."""

import sys

from doctor.cli import main

if __name__ == "__main__":
    sys.exit(main())
