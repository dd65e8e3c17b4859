"""``python -m agentkit``: the same as the ``agentkit`` command."""

from agentkit.cli import main

raise SystemExit(main())
