"""hearth-satellite: a Hearth voice satellite for a small Linux device with a microphone.

It hears the wake word itself (pymicro-wakeword) and streams audio to the Hearth bridge only
after it, never while muted. It does not import the bridge: it restates the small part of the
protocol it speaks (:mod:`hearth_satellite.protocol`), and a contract test keeps the two equal.
"""

__version__ = "0.1.0"
