"""qdlab.report"""
