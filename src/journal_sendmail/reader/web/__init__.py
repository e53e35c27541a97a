"""The web inbox (``journal-mail serve``): read-only pages over the reader's query, filters and renderers."""
