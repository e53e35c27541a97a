"""The test kit: every helper the tests share, one package on pytest's pythonpath
(setup.cfg's ``pythonpath = tests src``; installed runs say ``-o pythonpath=tests``).

- ``harness``: the private mount namespace and a real journald
- ``support``: paths, the program under test (sendmail, journal-mail), waits
- ``net``: a free loopback port, a test CA, an HTTP recorder
- ``reader``, ``web``, ``forward``, ``fleet``, ``callers``, ``host``, ``package``:
  the helpers of the test directory of that name

Fixtures stay in the conftest.py files; test modules import from here, never
from a conftest (every directory has one, and they would shadow each other).
"""
