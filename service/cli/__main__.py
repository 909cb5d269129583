"""`python -m service.cli`: the same command as the `mightycall-ingest` console script."""

import sys

from service.cli import main

sys.exit(main())
