"""Data files shipped with sme (the price table)."""
