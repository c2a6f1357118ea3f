"""Training: paired and synthetic data, losses, the training loop and export."""
