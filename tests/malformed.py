"""Messages a client must never send: the typed model (simprot.messages.from_wire) and the
server's inline checks are held to this one table (tests/unit and tests/integration)."""

MALFORMED: list = [
    [], [0], [99, 1], ["1", 1, "op", {}], [1, 0, "op", {}], [1, 2**32, "op", {}], [1, 1, "", {}],
    [1, 1, "x" * 65, {}], [1, 1, "op", []], [1, 1, "op"], [1, 1.0, "op", {}], [1.0, 1, "echo", {}],
    [3, 1, 12345, "m", {}], [4, "t", 0, "n", None], [5, -1], [6, "x"],
]
