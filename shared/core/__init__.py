"""The domain, pure: models, the state machine, lineage, naming, Job rendering, settings.

Imports nothing else of shared/ (tests/shared/test_architecture.py, make lint).
"""
