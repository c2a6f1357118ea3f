"""`lowlight eval`: paired folders scored against their references (`paired`), the metrics and the classical
baselines."""
