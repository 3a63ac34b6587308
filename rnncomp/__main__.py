"""`python -m rnncomp ...`: the same command line as the `rnncomp` console script."""

from .cli import main

raise SystemExit(main())
