"""rstq.cli"""
