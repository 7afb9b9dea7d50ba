"""Data: the synthetic sets, files (CSV, NPZ), image folders, splits, scaling and label noise."""
