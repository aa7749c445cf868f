"""mailflow: an email gateway for applications on AWS (SES in, SQS between, SES out)."""

__version__ = "0.1.0"
