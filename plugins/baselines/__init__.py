"""Classical baseline models shipped with hqf."""
