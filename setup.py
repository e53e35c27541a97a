"""A shim for stdeb only: ``python3 setup.py --command-packages=stdeb.command bdist_deb``.

The build is declared in pyproject.toml and setup.cfg.  The .deb that stdeb
makes holds the Python module and journal-mail, nothing else; the real
package, with the MTA integration, is built from debian/.
"""

from setuptools import setup

setup()
