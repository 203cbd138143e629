"""Processes: the supervised-child abstraction and the LogServer."""
