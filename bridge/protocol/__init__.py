"""Wire formats: Hearth's own satellite protocol and Hermes compatibility. Pure, no I/O."""
