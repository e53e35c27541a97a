"""The forwarder (``journal-mail forward``): the mail that matters, routed by rules to a smarthost or a webhook.

config (forward.toml) ─> rules (which rule decides a mail) ─> compose (wrap, resend, webhook and digest bodies)
source (per-host cursors) ─> service (one consumer per destination and digest; Forwarder.plan) ─> transport
state (cursors, delivered, retry; atomic) · digest (buckets, due times) · events (the journal) · dryrun
"""
