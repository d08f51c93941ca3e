"""One satellite's audio path and state machine (`machine`), the data it works with
(`session`), and the small `SatelliteHost` interface through which it reaches everything else
(`host`): the satellite never imports the service that runs it.
"""

from .host import AUDIO_TIMEOUT, SatelliteHost, SatelliteSettings
from .machine import Satellite
from .session import (
    SESSION_ID,
    Protocol,
    Session,
    SessionRequest,
    SessionSource,
    State,
    Timings,
    session_id_from,
)

__all__ = [
    "AUDIO_TIMEOUT",
    "SESSION_ID",
    "Protocol",
    "Satellite",
    "SatelliteHost",
    "SatelliteSettings",
    "Session",
    "SessionRequest",
    "SessionSource",
    "State",
    "Timings",
    "session_id_from",
]
