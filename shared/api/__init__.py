"""The HTTP edge: routing, decoding, envelopes, probes, views, SSE, OpenAPI, the UI.

It knows the services, never the composition root: the functions hand it the runtime.
"""
