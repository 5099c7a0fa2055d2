"""Type stub of the compiled formatter (``_format.c``)."""

SRC_ID: int
SRC_PID: int
SRC_TID: int
SRC_TS: int
SRC_DUR: int
SRC_RET: int
SRC_ARG0: int
SRC_FHASH: int
CONV_INT: int
CONV_HEX: int
CONV_NARROW: int

#: ((literal, value source, conversion), ...), tail literal
Template = tuple[tuple[tuple[bytes, int, int], ...], bytes]

class Formatter:
    def __init__(
        self, templates: dict[int, tuple[Template, Template | None]], offset: int
    ) -> None: ...
    def format_calls(
        self, chunk: bytes, pos: int, eid: int, limit: int
    ) -> tuple[bytes, int, int, int, int, int, int]: ...
