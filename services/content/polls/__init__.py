"""Polls: one vote per member of the community, live results."""
