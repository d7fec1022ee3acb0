"""`python -m vaelab.compare <folders>`: see `vaelab.compare.cli`."""

import sys

from vaelab.compare.cli import main

sys.exit(main())
