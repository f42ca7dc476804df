"""sme: deploy, load-test and watch SageMaker real-time endpoints from a shell."""

__version__ = "0.1.0"
