"""The use cases. launching, reports, stopping, admission, leases, intake and outbox receive the
ports they need (a `Context`) and call the core and the adapters; `QueueService` is the facade the
functions use, and the sweep and drift repair drive it.
"""
