"""Data shipped with the bridge: the demo home, demo recordings, the frequent-word list."""
