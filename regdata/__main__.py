"""``python -m regdata``: the ``regdata`` command."""

from .cli import main

raise SystemExit(main())
