"""The forwarder (``journal-mail forward``): the mail that matters, routed by rules to a smarthost or a webhook.

config (forward.toml) ─> rules (which rule decides a mail) ─> compose (wrap, resend, webhook body)
source (per-host cursors) ─> service (one consumer per destination and digest) ─> smtp | webhook
state (cursors, delivered, retry; atomic) · digest (buckets, due times) · events (the journal)
"""
