"""regdata's benchmark against the floor (bare HTTP) and its peers; run ``python -m bench.run``."""
