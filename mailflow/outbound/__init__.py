"""Outbound: app JSON on the outbound queue -> validated, claimed once, composed, sent by SES."""
