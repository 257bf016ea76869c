"""qdlab.store: files (atomic writes, checkpoints) and the results database."""
