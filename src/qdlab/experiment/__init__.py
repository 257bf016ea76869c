"""qdlab.experiment"""
