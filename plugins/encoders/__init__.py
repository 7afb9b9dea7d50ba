"""Data encoders shipped with hqf."""
