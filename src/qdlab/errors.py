"""Exceptions that carry a one-line, user-facing message.

Library code raises these for bad input; the CLI prints ``str(exc)`` on one line and exits
non-zero. Anything else escaping to the CLI is a bug.
"""


class QdlabError(ValueError):
    """Invalid input or an impossible request (one-line message for the user)."""


class BuildError(QdlabError):
    """A nanocrystal model cannot be built as requested."""


class LigandError(QdlabError):
    """Unknown ligand, invalid SMILES or motif, or a ligand that cannot be placed."""
