"""Projection functions: the read tables as a function of the event log (the projections issue)."""
