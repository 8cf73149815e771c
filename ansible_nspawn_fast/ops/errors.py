"""The operator tools' one error type: a single line saying what failed, where, what to do."""
from __future__ import annotations


class OpsError(Exception):
    """Printed as `nspawn-fast: error: MESSAGE`, never as a traceback; exit status `status`."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever the host said
        self.status = status
