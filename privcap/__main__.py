"""``python -m privcap`` is the ``privcap`` command."""

import sys

from privcap.cli import main

sys.exit(main())
