"""An AWS-compatible endpoint on loopback: a moto server extended by sme (tests and `sme local`)."""
