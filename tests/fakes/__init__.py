"""Fakes shared by the tests: real loopback servers standing in for remote services."""
