"""Tools, not stages: the load generator and the end-to-end harness behind ``fastflow bench e2e``."""
