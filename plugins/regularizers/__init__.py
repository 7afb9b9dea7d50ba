"""Loss regularizers shipped with hqf."""
