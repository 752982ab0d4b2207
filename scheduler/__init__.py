"""The re-evaluation and lapse scheduler. Empty so far."""
