"""I/O behind the ports: the state stores, the Job launchers, the event bus, CloudEvents, metrics.

They import the core only; state, launch and bus never import each other.
"""
