"""The delivery service: webhooks that push verdicts and reports to platforms and rightsholders."""
