"""qdlab.cli"""
