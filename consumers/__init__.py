"""Kafka consumers (the billing payment consumer). Empty so far."""
