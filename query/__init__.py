"""rstq.query"""
