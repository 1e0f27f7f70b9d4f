"""Measuring built models: counts verified against fvcore, profiling, the gradient probe."""
