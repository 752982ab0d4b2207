"""Tests of the Kafka event stream: the publisher and the payment consumer."""
