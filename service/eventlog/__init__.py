"""The event log: append (the only writer), group commit, the hash chain, verification."""
