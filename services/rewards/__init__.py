"""The rewards service."""
