"""``python3 -m journal_sendmail``: the MTA."""

import sys

from journal_sendmail.cli import main

sys.argv[0] = "journal-sendmail"

raise SystemExit(main())
