"""pytest plugin: in-memory metric and log capture for service tests."""
