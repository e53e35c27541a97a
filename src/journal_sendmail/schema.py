"""Schema: the contract between the sender and the reader wing, in one place.

What an entry in the journal says and what a reader may believe of it: the
message ids, the field names, the limits a sender keeps, the header <-> field
table, who wrote an entry and what makes two entries copies of one mail.  The
sender (record.py, the encoder) and the reader (reader/) both import it;
journal-sendmail(8) documents it (tests/test_docs.py checks that against this
module).  It imports nothing: it is on the cron-mail path, so its import is a
few constants, tuples and dicts (no class, no record instance).
"""

TYPE_CHECKING = False  # typing is not imported on the sender's path
if TYPE_CHECKING:
    from collections.abc import Callable

# -- message ids (MESSAGE_ID=; each explained in conf/journal-sendmail.catalog) --
MSG_MAIL = "4cf50392e5a34635904ffaeffb43b172"  # a message
MSG_PART = "aa12d80295f04539a057a77642e355d5"  # part 2..N of a split message
MSG_REFUSED = "23042c0ef8f74902814ee4284e0a5521"  # a message refused (still recorded)
MSG_SPOOL = "963c70d77fdb45678cf8479f3cbe9fdf"  # a spool file refused
MSG_CONFIG = "c66f6fa4eeab4705b30209695349ff94"  # a bad configuration, defaults used
MSG_FORWARD = "cda5a93613b14aa58d5d8dd0dbbe3c61"  # what the forwarder did
MESSAGE_IDS = (MSG_MAIL, MSG_PART, MSG_REFUSED, MSG_SPOOL, MSG_CONFIG, MSG_FORWARD)  # ours, all in the catalog
# systemd's, not ours: what the reader and journal-mail-failure@.service look for
MSG_JOURNAL_DROPPED = "a596d6fe7bfa4994828e72309e95d61e"  # SD_MESSAGE_JOURNAL_DROPPED
MSG_UNIT_FAILURE_RESULT = "d9b373ed55a64feb8242e02dbe79a49c"  # SD_MESSAGE_UNIT_FAILURE_RESULT

# -- what a sender can produce, so what a reader may believe ----------------------
# A part is at least PART_SIZE_MIN bytes and a message at most MAX_SIZE_CEILING,
# so a message has at most MAX_PARTS parts (config.py keeps part_size and
# max_size in range).
PART_SIZE_MIN = 4 * 1024
PART_SIZE_MAX = 64 * 1024 * 1024
MAX_SIZE_CEILING = 1024 * 1024 * 1024
MAX_PARTS = MAX_SIZE_CEILING // PART_SIZE_MIN
MAX_RCPT_FIELDS = 500  # MAIL_RCPT fields at most: journald drops a whole entry of more than ~1024 fields
# What any header parser is given of a header block (mailparse.py says why):
# past these, a header is cut or left out (a MAIL_DEFECTS line says so), so a
# MAIL_<header> field holds at most HEADER_MAX bytes; MAIL_RAW keeps every byte.
HEADER_MAX = 64 * 1024  # bytes of one header, its folded lines together
BLOCK_MAX = 1024 * 1024  # bytes of the header block
HEADERS_MAX = 1000  # headers in the block (a long Received chain has a hundred)

# -- the fields of a message entry (journal-sendmail(8), JOURNAL FIELDS) ------------
MAIL_ID = "MAIL_ID"
MAIL_REFUSED = "MAIL_REFUSED"
MAIL_ENVELOPE_FROM = "MAIL_ENVELOPE_FROM"
MAIL_FULL_NAME = "MAIL_FULL_NAME"
MAIL_RCPT = "MAIL_RCPT"
MAIL_RCPTS = "MAIL_RCPTS"
MAIL_FROM = "MAIL_FROM"
MAIL_TO = "MAIL_TO"
MAIL_CC = "MAIL_CC"
MAIL_BCC = "MAIL_BCC"
MAIL_SUBJECT = "MAIL_SUBJECT"
MAIL_DATE = "MAIL_DATE"
MAIL_MESSAGE_ID = "MAIL_MESSAGE_ID"
MAIL_AUTO_SUBMITTED = "MAIL_AUTO_SUBMITTED"
# the X-Failed-* headers of journal-mail-failure@.service (failure.py): claims, like every header
MAIL_FAILED_UNIT = "MAIL_FAILED_UNIT"
MAIL_FAILED_RESULT = "MAIL_FAILED_RESULT"
MAIL_FAILED_EXIT_CODE = "MAIL_FAILED_EXIT_CODE"
MAIL_FAILED_EXIT_STATUS = "MAIL_FAILED_EXIT_STATUS"
MAIL_FAILED_INVOCATION_ID = "MAIL_FAILED_INVOCATION_ID"
MAIL_SIZE = "MAIL_SIZE"
MAIL_SHA256 = "MAIL_SHA256"
MAIL_PART = "MAIL_PART"
MAIL_PARTS = "MAIL_PARTS"
MAIL_RAW = "MAIL_RAW"
MAIL_TEXT = "MAIL_TEXT"
MAIL_ARGV = "MAIL_ARGV"
MAIL_INVOKED_AS = "MAIL_INVOKED_AS"
MAIL_CALLER_PID = "MAIL_CALLER_PID"
MAIL_CALLER_COMM = "MAIL_CALLER_COMM"
MAIL_CALLER_EXE = "MAIL_CALLER_EXE"
MAIL_CALLER_UNIT = "MAIL_CALLER_UNIT"
MAIL_DEFECTS = "MAIL_DEFECTS"
MAIL_TRUNCATED = "MAIL_TRUNCATED"
MAIL_AFTER_DOT = "MAIL_AFTER_DOT"
MAIL_AFTER_DOT_SIZE = "MAIL_AFTER_DOT_SIZE"
MAIL_CONFIG_ERROR = "MAIL_CONFIG_ERROR"
# recorded command-line options (options.py's table)
MAIL_DSN_NOTIFY = "MAIL_DSN_NOTIFY"
MAIL_DSN_RET = "MAIL_DSN_RET"
MAIL_ENVID = "MAIL_ENVID"
MAIL_BODY_TYPE = "MAIL_BODY_TYPE"
MAIL_HOP_COUNT = "MAIL_HOP_COUNT"
MAIL_PROTOCOL = "MAIL_PROTOCOL"  # -p, or the SMTP mode's SMTP/ESMTP
MAIL_LOG_LABEL = "MAIL_LOG_LABEL"
MAIL_CONFIG_FILE = "MAIL_CONFIG_FILE"
MAIL_OPTION = "MAIL_OPTION"
MAIL_TRAFFIC_LOG = "MAIL_TRAFFIC_LOG"
# the SMTP mode's envelope (smtp.py)
MAIL_SMTP_HELO = "MAIL_SMTP_HELO"
MAIL_SMTP_MAIL_PARAMS = "MAIL_SMTP_MAIL_PARAMS"
MAIL_SMTP_RCPT_PARAMS = "MAIL_SMTP_RCPT_PARAMS"
# a message re-injected from the spool (spool.py)
MAIL_SPOOLED = "MAIL_SPOOLED"
MAIL_SPOOL_UID = "MAIL_SPOOL_UID"
MAIL_SUBMITTED_AT = "MAIL_SUBMITTED_AT"
# -- the fields of a spool event (MSG_SPOOL) and a configuration error (MSG_CONFIG) --
MAIL_SPOOL_FILE = "MAIL_SPOOL_FILE"
MAIL_SPOOL_REASON = "MAIL_SPOOL_REASON"
MAIL_CONFIG_KEY = "MAIL_CONFIG_KEY"
# -- the forwarder's events (MSG_FORWARD): FORWARD_EVENT, FORWARD_<detail>, MAIL_ID
FORWARD_EVENT = "FORWARD_EVENT"

# Headers recorded as MAIL_<NAME> fields, by lower-case header name: a mail's
# own (the reader keys them by the header name with "_" for "-": message_id) ...
MESSAGE_HEADER_FIELDS = {
    "from": MAIL_FROM,
    "to": MAIL_TO,
    "cc": MAIL_CC,
    "bcc": MAIL_BCC,
    "subject": MAIL_SUBJECT,
    "date": MAIL_DATE,
    "message-id": MAIL_MESSAGE_ID,
    "auto-submitted": MAIL_AUTO_SUBMITTED,
}
# ... and what journal-mail-failure@.service says of a failed unit (failure.py), for rules to match:
# any sender may write these headers; a rule trusts them only with _SYSTEMD_UNIT (journal-sendmail(8)).
FAILURE_HEADER_FIELDS = {
    "x-failed-unit": MAIL_FAILED_UNIT,
    "x-failed-result": MAIL_FAILED_RESULT,
    "x-failed-exit-code": MAIL_FAILED_EXIT_CODE,
    "x-failed-exit-status": MAIL_FAILED_EXIT_STATUS,
    "x-failed-invocation-id": MAIL_FAILED_INVOCATION_ID,
}
HEADER_FIELDS = {**MESSAGE_HEADER_FIELDS, **FAILURE_HEADER_FIELDS}  # every header recorded
CALLER_FIELDS = (MAIL_CALLER_PID, MAIL_CALLER_COMM, MAIL_CALLER_EXE, MAIL_CALLER_UNIT)  # the caller's: claims
SMTP_FIELDS = (MAIL_PROTOCOL, MAIL_SMTP_HELO, MAIL_SMTP_MAIL_PARAMS, MAIL_SMTP_RCPT_PARAMS)  # smtp.py's envelope

# Every MAIL_* field journal-sendmail writes (each documented in journal-sendmail(8)).
FIELDS = (
    MAIL_ID, MAIL_REFUSED, MAIL_ENVELOPE_FROM, MAIL_FULL_NAME, MAIL_RCPT, MAIL_RCPTS, *HEADER_FIELDS.values(),
    MAIL_SIZE, MAIL_SHA256, MAIL_PART, MAIL_PARTS, MAIL_RAW, MAIL_TEXT, MAIL_ARGV, MAIL_INVOKED_AS, *CALLER_FIELDS,
    MAIL_DEFECTS, MAIL_TRUNCATED, MAIL_AFTER_DOT, MAIL_AFTER_DOT_SIZE, MAIL_CONFIG_ERROR,
    MAIL_DSN_NOTIFY, MAIL_DSN_RET, MAIL_ENVID, MAIL_BODY_TYPE, MAIL_HOP_COUNT, MAIL_LOG_LABEL, MAIL_CONFIG_FILE,
    MAIL_OPTION, MAIL_TRAFFIC_LOG, *SMTP_FIELDS, MAIL_SPOOLED, MAIL_SPOOL_UID, MAIL_SUBMITTED_AT,
    MAIL_SPOOL_FILE, MAIL_SPOOL_REASON, MAIL_CONFIG_KEY,
)

# -- who wrote an entry: journald's trusted fields, which no sender can forge ------
TRUSTED_UID = "_UID"
TRUSTED_HOSTNAME = "_HOSTNAME"
TRUSTED_BOOT_ID = "_BOOT_ID"
TRUSTED_UNIT = "_SYSTEMD_UNIT"
SENDER_FIELDS = (TRUSTED_UID, TRUSTED_HOSTNAME, TRUSTED_BOOT_ID)  # a mail is the entries of one sender


def copy_key(get: "Callable[[str], bytes | None]", cursor: str) -> str:
    """The identity of a mail copy: what makes two entries copies of one mail.

    The same MAIL_ID from the same sender (SENDER_FIELDS; ``get`` gives a
    field's first value, or None).  The same MAIL_ID from another sender is
    another mail (a forged twin), never a copy; an entry without a MAIL_ID is
    only itself (its cursor).  The index keeps this string (copy_key column).

    >>> entry = {"MAIL_ID": b"ab", "_UID": b"0", "_HOSTNAME": b"h"}
    >>> copy_key(entry.get, "s=1"), copy_key({}.get, "s=1")
    ('ab\\x000\\x00h\\x00', 's=1')
    """
    mail_id = get(MAIL_ID)
    if not mail_id:
        return cursor
    return b"\0".join([mail_id, *(get(name) or b"" for name in SENDER_FIELDS)]).decode("utf-8", "replace")
