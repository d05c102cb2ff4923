"""The management API (Powertools REST resolver): owner routes, self-service routes, leak reports."""
