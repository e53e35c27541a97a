"""The reader wing: ``journal-mail``, which reads the mail journal-sendmail stored.

cli (argv) -> commands -> query (the journal) -> entry (one mail) -> filters
-> assemble (split mail) -> render -> output.  The sender never imports this
package; this package takes only the sender's shared pieces (errors, field
names and message ids, headers, body, users).
"""
