"""``python -m atbsn``: the same as the ``atbsn`` command."""

import sys

from atbsn.cli import main

sys.exit(main())
