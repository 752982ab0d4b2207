"""The domain's errors: each says what was refused and why, for a person to act on.

Two families matter at the boundary: a :class:`RefusedError` is a command that
does not fit the certification's current state (the HTTP API answers 409),
and an :class:`InvalidCommandError` is a command whose content is wrong for
this certification (422).
"""


class CertificationError(Exception):
    """Base of every error the certification domain raises."""


class RefusedError(CertificationError):
    """The command does not fit the certification's current state."""


class InvalidCommandError(CertificationError):
    """The command's content is wrong for this certification.

    ``field`` names the part of the command's body that was wrong.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class StatusConflictError(RefusedError):
    """The command needs another status than the certification's."""

    def __init__(self, command: str, status: str, expected: str) -> None:
        super().__init__(
            f"cannot {command}: the certification is '{status}', "
            f"and {command} needs {expected}"
        )
        self.command = command
        self.status = status


class NotYetDueError(RefusedError):
    """A scheduled fact (re-evaluation, lapse) was raised before its date."""


class RenewalClosedError(RefusedError):
    """A renewal step came after the renewal's deadline."""


class PaymentReferenceReusedError(RefusedError):
    """A payment reference came back with a different kind or amount."""


class UnknownInfoRequestError(RefusedError):
    """An answer names an information request that is not the open one."""


class FeeMismatchError(InvalidCommandError):
    """A payment is not the exact fee due."""
