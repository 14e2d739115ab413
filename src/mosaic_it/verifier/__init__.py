"""Checking a response against a sample's spec."""
