"""The use cases: each receives the ports it needs (a `Context`) and calls the core and the adapters.

`QueueService` is the facade the functions and the sweep use.
"""
