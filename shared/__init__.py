"""The library the StreamForge queue-manager functions share."""
