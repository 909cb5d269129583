"""Rebuilding projections from the whole log: shadow tables, replays, fill processes, the swap."""
