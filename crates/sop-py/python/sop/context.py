"""sop4py's ``Context``: kept so sop4py programs run unchanged. sop-rs needs no context
object; every call takes one and ignores it."""


class Context:
    """A call context (accepted everywhere sop4py takes one; carries nothing)."""

    def __repr__(self) -> str:
        return "Context()"
