"""Command line and training entry points of tf-zoneout (the ``zoneout`` console script)."""
