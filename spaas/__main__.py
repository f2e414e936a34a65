"""`python -m spaas ...` is the `spaas` command."""

import sys

from spaas.cli import main

sys.exit(main())
