"""Graph-to-graph passes, one per file. Each takes a verified Graph and returns a new one."""
