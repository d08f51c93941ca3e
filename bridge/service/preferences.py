"""Per-satellite settings chosen in Home Assistant: the wake word and the finished-speaking detection.

`<prefix>/satellite/<sat>/settings/set` carries a partial update (docs/protocol.md); the bridge
validates it (a refusal has a code: `bad_setting`, `unknown_wake_word`, `bad_sensitivity`,
`too_many_satellites`, `save_failed`), saves it in ``satellite-settings.json`` in its data folder
before it takes effect (so it survives a restart), applies it to the satellite, answers on
`settings/result` and shows the settings in force in the satellite's retained `state`.

- `wake_word` is what the bridge listens for on that satellite. It wins over the configuration's
  and the satellite's announced wake word (it is the owner's latest choice); a satellite that
  detects the wake word itself reads it from its retained `state` (`settings.wake_word`).
- `sensitivity` (`relaxed`, `default`, `aggressive`) scales the configured endpoint tails
  (`endpoint.silence_tail`, `complete_tail`, `vad_tail`) for the satellite's next sessions:
  relaxed waits 1.8 times as long (Home Assistant's 1.25 s against its 0.7 s default), aggressive
  0.6 times (not Home Assistant's 0.36: the bridge's energy tail already ends most commands within
  0.3 s of silence, and shorter tails cut the last word off).
- `confirm` (`unsure`, `sensitive`, `never`) says when the bridge asks back before acting
  (`bridge.service.dialogue`): when the hearing is unsure and before sensitive or house-wide
  actions (the default), only before sensitive or house-wide actions, or never.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..pipeline.endpoint import EndpointSettings
from ..privacy.store import StoredFileError, _read_document, write_json_atomic
from ..protocol.hearth import WAKE_WORDS, ProtocolError, is_satellite_id, parse_json_object
from ..protocol.messages import (
    CONFIRM_MODES,
    SENSITIVITIES,
    Json,
    JsonObject,
    SatelliteSettingsResult,
    SatelliteSettingsSet,
)
from ..satellite import Satellite
from .outbox import Outbox

_LOGGER = logging.getLogger("bridge")

SETTINGS_FILE = "satellite-settings.json"
#: how much longer (or shorter) than configured each sensitivity lets the endpoint tails run
TAIL_FACTORS: Mapping[str, float] = {"relaxed": 1.8, "default": 1.0, "aggressive": 0.6}


@dataclass(frozen=True, slots=True)
class SatellitePreferences:
    """One satellite's settings from Home Assistant."""

    wake_word: str | None = None  #: None: the satellite's own, the configured, or the default one
    sensitivity: str = "default"
    confirm: str = "unsure"

    def to_json(self) -> JsonObject:
        return {"wake_word": self.wake_word, "sensitivity": self.sensitivity, "confirm": self.confirm}

    @classmethod
    def from_json(cls, data: object) -> SatellitePreferences | None:
        """A saved entry; None when it is not one this bridge could have written."""
        if not isinstance(data, dict):
            return None
        wake_word, sensitivity = data.get("wake_word"), data.get("sensitivity", "default")
        confirm = data.get("confirm", "unsure")  # files from before `confirm`: the default
        if ((wake_word is not None and wake_word not in WAKE_WORDS) or sensitivity not in SENSITIVITIES
                or confirm not in CONFIRM_MODES):
            return None
        return cls(wake_word=wake_word if isinstance(wake_word, str) else None, sensitivity=str(sensitivity),
                   confirm=str(confirm))

    def apply(self, command: SatelliteSettingsSet) -> SatellitePreferences:
        wake_word = None if command.clear_wake_word else (command.wake_word or self.wake_word)
        return SatellitePreferences(wake_word=wake_word, sensitivity=command.sensitivity or self.sensitivity,
                                    confirm=command.confirm or self.confirm)


def endpoint_for(base: EndpointSettings, sensitivity: str) -> EndpointSettings:
    """The configured endpoint settings with their silence tails scaled for a sensitivity."""
    factor = TAIL_FACTORS.get(sensitivity, 1.0)
    if factor == 1.0:
        return base
    return dataclasses.replace(base, silence_tail=round(base.silence_tail * factor, 3),
                               complete_tail=round(base.complete_tail * factor, 3),
                               vad_tail=round(base.vad_tail * factor, 3))


class PreferenceStore:
    """``satellite-settings.json``: ``{"format": 1, "satellites": {"<sat>": {...}}}``, mode 0600,
    written atomically. Loading never raises: an unusable file gives no settings (logged)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / SETTINGS_FILE

    def load(self) -> dict[str, SatellitePreferences]:
        try:
            saved = _read_document(self.path, "satellites")
        except FileNotFoundError:
            return {}
        except StoredFileError as err:
            _LOGGER.warning("Satellite settings not loaded: %s; every satellite starts from its defaults", err)
            return {}
        loaded: dict[str, SatellitePreferences] = {}
        for sat_id, entry in (saved.items() if isinstance(saved, dict) else ()):
            if is_satellite_id(sat_id) and (prefs := SatellitePreferences.from_json(entry)) is not None:
                loaded[sat_id] = prefs
        return loaded

    def save(self, prefs: Mapping[str, SatellitePreferences]) -> None:
        write_json_atomic(self.path, {"format": 1,
                                      "satellites": {sat: p.to_json() for sat, p in sorted(prefs.items())}})


class PreferenceHost(Protocol):
    @property
    def satellites(self) -> Mapping[str, Satellite]: ...
    def state_changed(self, sat: Satellite) -> None: ...


class SatellitePreferenceControl:
    """Holds every satellite's settings, applies `settings/set` commands and the settings in force."""

    def __init__(self, store: PreferenceStore, outbox: Outbox, host: PreferenceHost,
                 report_error: Callable[[str, str, str | None, str | None, str | None], None],
                 endpoint: EndpointSettings, max_satellites: int) -> None:
        self.store = store
        self.outbox = outbox
        self.host = host
        self.report_error = report_error
        self.endpoint = endpoint
        self.max_satellites = max_satellites
        self.prefs = store.load()
        #: the configuration's wake word for a satellite (set by the bridge)
        self.configured_wake_word: Callable[[str], str | None] = lambda _sat_id: None

    def get(self, sat_id: str) -> SatellitePreferences:
        return self.prefs.get(sat_id) or SatellitePreferences()

    def settings_json(self, sat_id: str) -> JsonObject:
        """What the satellite's retained state shows: the settings in force. With no wake word
        chosen in Home Assistant, the configuration's for the satellite (`satellites.<id>.wake_word`,
        the add-on's satellite option), so that a satellite hearing the wake word itself follows it."""
        data = self.get(sat_id).to_json()
        if data["wake_word"] is None:
            data["wake_word"] = self.configured_wake_word(sat_id)
        return data

    def wake_word(self, sat_id: str) -> str | None:
        """The wake word Home Assistant chose for a satellite (None: it chose none)."""
        return self.get(sat_id).wake_word

    def confirm(self, sat_id: str) -> str:
        """When the bridge asks back on this satellite: `unsure`, `sensitive` or `never`."""
        return self.get(sat_id).confirm

    def endpoint_settings(self, sat_id: str) -> EndpointSettings:
        return endpoint_for(self.endpoint, self.get(sat_id).sensitivity)

    def apply(self, sat: Satellite, fallback_wake_word: str) -> None:
        """Put a satellite's settings in force: its wake word and its next sessions' tails."""
        sat.wake_word = self.wake_word(sat.id) or fallback_wake_word
        sat.settings = dataclasses.replace(sat.settings, endpoint=self.endpoint_settings(sat.id))

    def on_command(self, sat_id: str, payload: bytes, fallback_wake_word: Callable[[str], str]) -> None:
        """`<prefix>/satellite/<sat>/settings/set`: validated, saved, applied, then answered."""
        request_id: Json = None
        topic = self.outbox.topics.satellite(sat_id, "settings/set")
        try:
            data = parse_json_object(payload, "settings/set")
            request_id = data.get("request_id")
            command = SatelliteSettingsSet.from_json(data)
            updated = self.get(sat_id).apply(command)
            if sat_id not in self.prefs and len(self.prefs) >= self.max_satellites:
                raise ProtocolError("too_many_satellites",
                                    f"settings for more than {self.max_satellites} satellites (limits.max_satellites)")
            if updated != self.get(sat_id):
                prefs = {**self.prefs, sat_id: updated}
                try:
                    self.store.save(prefs)  # saved before it takes effect or is confirmed
                except OSError as err:
                    raise ProtocolError("save_failed", f"could not save the satellite settings: {err}") from err
                self.prefs = prefs
                _LOGGER.info("Satellite %s: wake word %s, sensitivity %s, confirm %s", sat_id,
                             updated.wake_word or "(its own)", updated.sensitivity, updated.confirm)
        except ProtocolError as err:
            self.report_error(err.code, err.message, sat_id, None, topic)
            self._result(sat_id, request_id, False, err.code, err.message)
            return
        if (sat := self.host.satellites.get(sat_id)) is not None:
            self.apply(sat, fallback_wake_word(sat_id))
            self.host.state_changed(sat)
        self._result(sat_id, request_id, True, None, None)

    def _result(self, sat_id: str, request_id: Json, ok: bool, code: str | None, error: str | None) -> None:
        self.outbox.send(self.outbox.topics.satellite(sat_id, "settings/result"),
                         SatelliteSettingsResult(request_id, ok, code, error, self.settings_json(sat_id)))
