"""Read models for operations staff, built from the store's notification log.

Empty so far: ``GET /v1/certifications/{id}`` reads the aggregate itself until
the status views exist.
"""
