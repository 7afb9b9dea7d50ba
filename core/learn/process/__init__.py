"""The process around a run: threads and settings (runtime), data-parallel ranks (distributed), the
time left (eta, pace), energy counters, TensorBoard."""
