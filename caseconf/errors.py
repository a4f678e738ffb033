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
    """Not allowed. `record_type` and `record_id` name the record refused, when there is one, so that the
    refusal's audit row appears on that record's access log."""

    def __init__(self, message: str = "", *, record_type: str | None = None, record_id: int | str | None = None):
        self.record_type = record_type
        self.record_id = None if record_id is None else str(record_id)
        super().__init__(message)
