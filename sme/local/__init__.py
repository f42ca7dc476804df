"""Local mode: everything sme does, on one machine with no AWS account (a moto-based AWS stand-in and
real model runtimes). Nothing heavy is imported here."""
