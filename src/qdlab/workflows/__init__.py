"""qdlab.workflows"""
