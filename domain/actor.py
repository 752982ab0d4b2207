from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """Who issued a command: a role and the name of the credential used.

    The name identifies a token without revealing it; the token itself is
    never stored or logged.
    """

    role: str
    name: str

    def as_record(self) -> dict[str, str]:
        return {"role": self.role, "name": self.name}


SCHEDULER = Actor(role="system", name="scheduler")
