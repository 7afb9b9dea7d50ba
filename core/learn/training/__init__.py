"""The hybrid model and its training: the model, the loss terms, the training loop (Algorithm 1 of the
seed paper), metrics, the full-batch gradient probe and the training plots."""
