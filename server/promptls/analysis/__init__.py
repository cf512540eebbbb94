"""The pure analysis core: text in, frozen dataclasses out. Never imports pygls or lsprotocol."""
