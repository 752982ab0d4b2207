"""The re-evaluation and lapse scheduler: passes over the status view."""
