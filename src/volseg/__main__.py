"""``python -m volseg`` works like the ``volseg`` command."""

import sys

from volseg.cli import main

sys.exit(main())
