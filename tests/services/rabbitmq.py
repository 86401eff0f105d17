"""Placeholder: fixtures for this service are added with its backend."""
