"""rstq.pgwire"""
