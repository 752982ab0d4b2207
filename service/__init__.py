"""The application service and its wiring: settings, store, logs, command line."""
