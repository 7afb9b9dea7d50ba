"""The backend conformance suite, importable by backend authors (``hqf check``)."""
