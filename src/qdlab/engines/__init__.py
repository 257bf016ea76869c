"""qdlab.engines"""
