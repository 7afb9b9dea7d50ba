"""The run directory and its state: the folder and its files, the lifecycle of a run, the lock,
checkpoints, and the saved model."""
