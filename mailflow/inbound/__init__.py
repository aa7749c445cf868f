"""Inbound: SES receipt notification -> raw MIME in S3 -> parsed, policed, routed JSON."""
