"""Running the benchmark: the grid of cells, the harness that runs one, and executors."""
