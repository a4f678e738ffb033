"""Errors that service functions raise and the edges turn into messages."""


class CaseconfError(Exception):
    pass


class NotFound(CaseconfError):
    pass


class Conflict(CaseconfError):
    pass


class Invalid(CaseconfError):
    """Bad input: `problems` maps a field name to a plain-English message."""

    def __init__(self, problems: dict[str, str] | list[str]):
        self.problems = problems
        super().__init__("; ".join(problems.values() if isinstance(problems, dict) else problems))


class Forbidden(CaseconfError):
    pass
