"""qdlab.analysis"""
