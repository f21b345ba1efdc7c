"""compile(): per-batch-size artifacts made in a compile process, cached, listed in a model
index."""
