"""The Licensed Model certification: its rules, forms, fees and events.

Nothing here does I/O or logs; time comes in as an argument.
"""
