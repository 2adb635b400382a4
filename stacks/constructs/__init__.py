"""Reusable constructs: one capability each, resources exposed as attributes."""
