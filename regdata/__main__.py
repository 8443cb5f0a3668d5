"""``python -m regdata``: the ``regdata`` command."""

from regdata.cli import main

raise SystemExit(main())
