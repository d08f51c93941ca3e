"""The bridge service: satellites in over MQTT, engines, policy, results out.

    link (MQTT) ─▶ dispatch ─┬─▶ satellites (bridge.satellite) ─▶ open_stream ─▶ stt/
                             ├─▶ hermes (adapter)                     │
                             ├─▶ control (policy commands, mutes)     ▼
                             └─▶ vocabulary (swap)            results ─▶ outbox ─▶ link

`build_bridge(settings)` makes every engine and hands it in; `Bridge` is the satellites' host.
"""

from .bridge import Bridge, Engines
from .build import build_bridge

__all__ = ["Bridge", "Engines", "build_bridge"]
