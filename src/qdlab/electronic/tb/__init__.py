"""Orthogonal Slater–Koster tight binding with spin–orbit coupling for APbX3 nanocrystals."""
