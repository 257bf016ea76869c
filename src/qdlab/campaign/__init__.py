"""qdlab.campaign"""
