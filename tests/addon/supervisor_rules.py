"""Home Assistant Supervisor's rules for an add-on's files, restated for tests.

Taken from Supervisor's `supervisor/addons/validate.py` (the config, build and translation
schemas) and `supervisor/addons/options.py` (the option type syntax and how options are checked
against the schema), reduced to what Hearth's add-on uses. Supervisor itself is not installable
here (it needs its whole runtime), so this keeps its exact regular expressions and rules.
"""

from __future__ import annotations

import re
from typing import Any

import voluptuous as vol

ARCH_ALL = ("armhf", "armv7", "aarch64", "amd64", "i386")
RE_SLUG = r"[-_.A-Za-z0-9]+"
RE_SERVICE = re.compile(r"^(?P<service>mqtt|mysql):(?P<rights>provide|want|need)$")
RE_VERSION = re.compile(r"^\d+(\.\d+)*([ab.\-+]?[\w.\-+]*)?$")
RE_DOCKER_IMAGE_BUILD = re.compile(r"^([a-zA-Z\-\.:\d{}]+/)*?([\-\w{}]+)/([\-\w{}]+)(:[\.\-\w{}]+)?$")
RE_VOLUME = re.compile(
    r"^(data|config|ssl|addons|backup|share|media|homeassistant_config|all_addon_configs|addon_config)(?::(rw|ro))?$")
RE_SCHEMA_ELEMENT = re.compile(
    r"^(?:"
    r"|bool"
    r"|email"
    r"|url"
    r"|port"
    r"|device(?:\((?P<filter>subsystem=[a-z]+)\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>\d+)?,(?P<i_max>\d+)?\))?"
    r"|float(?:\((?P<f_min>[\d\.]+)?,(?P<f_max>[\d\.]+)?\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<list>.+)\)"
    r")\??$"
)
_RANGE_PARTS = ("i_min", "i_max", "f_min", "f_max", "s_min", "s_max", "p_min", "p_max")


def _network_port(value: Any) -> int:
    port = int(value)
    if not 1 <= port <= 65535:
        raise vol.Invalid(f"{value} is not a network port")
    return port


SCHEMA_ELEMENT = vol.Schema(vol.Any(
    vol.Match(RE_SCHEMA_ELEMENT),
    [vol.Any(vol.Match(RE_SCHEMA_ELEMENT), {str: vol.Self})],  # a list may not hold a list
    {str: vol.Self},
))

#: The keys Hearth's add-on uses, each with Supervisor's rule; any other key fails here (the real
#: Supervisor drops unknown keys silently, which would hide a misspelt one).
SCHEMA_ADDON_CONFIG = vol.Schema({
    vol.Required("name"): str,
    vol.Required("version"): vol.Match(RE_VERSION),
    vol.Required("slug"): vol.Match(re.compile(r"^" + RE_SLUG + r"$")),
    vol.Required("description"): str,
    vol.Required("arch"): [vol.In(ARCH_ALL)],
    vol.Optional("url"): vol.Url(),
    vol.Optional("init"): bool,
    vol.Optional("startup"): vol.In(("initialize", "system", "services", "application", "once")),
    vol.Optional("boot"): vol.In(("auto", "manual", "manual_only")),
    vol.Optional("services"): [vol.Match(RE_SERVICE)],
    vol.Optional("discovery"): [str],  # services it may announce on `POST /discovery`
    vol.Optional("watchdog"): vol.Match(r"^(?:https?|\[PROTO:\w+\]|tcp):\/\/\[HOST\]:(\[PORT:\d+\]|\d+).*$"),
    vol.Optional("ingress"): bool,
    vol.Optional("ingress_port"): vol.Any(_network_port, vol.Equal(0)),
    vol.Optional("ingress_entry"): str,
    vol.Optional("ingress_stream"): bool,
    vol.Optional("panel_icon"): vol.Match(r"^mdi:[a-z0-9-]+$"),
    vol.Optional("panel_title"): str,
    vol.Optional("panel_admin"): bool,
    vol.Optional("homeassistant_api"): bool,
    vol.Optional("hassio_api"): bool,
    vol.Optional("ports"): {vol.Match(r"^\d+(?:/(?:tcp|udp))?$"): vol.Any(None, _network_port)},
    vol.Optional("map"): [vol.Match(RE_VOLUME)],
    vol.Optional("image"): vol.Match(RE_DOCKER_IMAGE_BUILD),
    vol.Optional("options"): dict,
    vol.Optional("schema"): vol.Any(vol.Schema({str: SCHEMA_ELEMENT}), False),
})

SCHEMA_BUILD_CONFIG = vol.Schema({
    vol.Optional("build_from"): vol.Any(
        vol.Match(RE_DOCKER_IMAGE_BUILD),
        vol.Schema({vol.In(ARCH_ALL): vol.Match(RE_DOCKER_IMAGE_BUILD)}),
    ),
    vol.Optional("squash"): bool,
    vol.Optional("args"): vol.Schema({str: str}),
    vol.Optional("labels"): vol.Schema({str: str}),
})

SCHEMA_TRANSLATION_CONFIGURATION = vol.Schema({
    vol.Required("name"): str,
    vol.Optional("description"): vol.Maybe(str),
    vol.Optional("fields"): {str: vol.Self},
})

SCHEMA_ADDON_TRANSLATIONS = vol.Schema({
    vol.Optional("configuration"): {str: SCHEMA_TRANSLATION_CONFIGURATION},
    vol.Optional("network"): {str: str},
})

SCHEMA_REPOSITORY_CONFIG = vol.Schema({
    vol.Required("name"): str,
    vol.Optional("url"): vol.Url(),
    vol.Optional("maintainer"): str,
}, extra=vol.REMOVE_EXTRA)


def validate_options(schema: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Options checked as Supervisor checks them before it writes /data/options.json; raises
    vol.Invalid. Unknown keys are an error here (Supervisor logs and drops them)."""
    return _validate_dict(schema, options, "root")


def _validate_dict(schema: dict[str, Any], data: Any, key: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise vol.Invalid(f"Invalid dict for option '{key}'")
    out = {}
    for c_key, value in data.items():
        if c_key not in schema:
            raise vol.Invalid(f"Option '{c_key}' does not exist in the schema ({key})")
        out[c_key] = _validate_element(schema[c_key], value, c_key)
    for missing in set(schema) - set(out):
        typ = schema[missing]
        if isinstance(typ, list) and typ:
            typ = typ[0]
        if isinstance(typ, str) and typ.endswith("?"):
            continue
        raise vol.Invalid(f"Missing option '{missing}' in {key}")
    return out


def _validate_element(typ: Any, value: Any, key: str) -> Any:
    if isinstance(typ, list):
        if not isinstance(value, list):
            raise vol.Invalid(f"Invalid list for option '{key}'")
        return [_validate_element(typ[0], element, key) for element in value]
    if isinstance(typ, dict):
        return _validate_dict(typ, value, key)
    return _validate_single(typ, value, key)


def _validate_single(typ: str, value: Any, key: str) -> Any:
    if value is None:
        raise vol.Invalid(f"Missing required option '{key}'")
    match = RE_SCHEMA_ELEMENT.match(typ)
    if not match:
        raise vol.Invalid(f"Unknown type '{typ}'")
    bounds = {name[2:]: float(match.group(name)) for name in _RANGE_PARTS if match.group(name)}
    if typ.startswith(("str", "password")):
        return vol.All(str(value), vol.Range(**bounds))(value)  # Supervisor's own (odd) check
    if typ.startswith("int"):
        return vol.All(vol.Coerce(int), vol.Range(**bounds))(value)
    if typ.startswith("float"):
        return vol.All(vol.Coerce(float), vol.Range(**bounds))(value)
    if typ.startswith("bool"):
        return vol.Boolean()(value)
    if typ.startswith("port"):
        return _network_port(value)
    if typ.startswith("match"):
        return vol.Match(match.group("match"))(str(value))
    if typ.startswith("list"):
        return vol.In(match.group("list").split("|"))(str(value))
    raise vol.Invalid(f"type '{typ}' is not used by this add-on")


def option_types(schema: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Every leaf of a schema as dotted key -> type string (lists of dicts by their fields)."""
    out: dict[str, str] = {}
    for key, typ in schema.items():
        if isinstance(typ, list):
            typ = typ[0]
        if isinstance(typ, dict):
            out.update(option_types(typ, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = typ
    return out
