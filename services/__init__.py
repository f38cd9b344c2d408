"""Qunyun: an open backend for running online communities."""
