"""rstq.tracing"""
