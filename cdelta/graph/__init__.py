"""The model as a graph: per-family adapters, node/edge structure, tapped forward passes, parameter slices."""
