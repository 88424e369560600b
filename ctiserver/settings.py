"""Typed, layered configuration shared by the daemons.

One `Settings` object, made of one frozen dataclass per section, is built once at start-up by
`load_settings()` and handed to components through their constructors. Four layers, each overriding
the one before it, key by key:

1. the dataclass defaults below (a demo that binds everything to 127.0.0.1);
2. a TOML file with the sections [node], [simprot], [http], [database], [log], [bootstrap];
3. environment variables `CTISERVER_<SECTION>__<KEY>`, e.g. `CTISERVER_SIMPROT__PORT=7401`;
4. command-line overrides `section.key=value`, e.g. `simprot.port=7401`.

Text values (layers 3 and 4) are parsed by the field's type: integers, floats, booleans
(true/false/1/0/yes/no) and comma-separated lists. The merged result is then validated as a whole.
Every problem -- an unknown section or key, a wrong type, a value out of range -- raises
`ConfigError`, whose `key` names the dotted key at fault ("simprot.port"). docs/configuration.md is
the reference for every key.
"""

import dataclasses
import difflib
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["BootstrapSettings", "ConfigError", "DatabaseSettings", "HttpSettings", "LogSettings",
           "IvrSettings", "NodeSettings", "Settings", "SimProtSettings", "SipSettings", "load_settings", "mask_dsn",
           "settings_to_dict"]

ENVIRONMENTS = ("demo", "production", "training", "test")  # SPEC ARCH-8
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")
ENV_PREFIX = "CTISERVER_"
_MIB = 1_048_576
_STRINGS = tuple[str, ...]


class ConfigError(Exception):
    """The configuration is unusable; `key` names the dotted key at fault, `problem` says why."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class NodeSettings:
    name: str = "cc1"
    environment: str = "demo"
    mail_domain: str = ""  # informational for now: "cc.example.cz", "cctrain.example.cz", ...


@dataclass(frozen=True, slots=True)
class SimProtSettings:
    host: str = "127.0.0.1"
    port: int = 7400  # 0 = pick a free port
    tls_cert: str = ""  # both or neither
    tls_key: str = ""
    max_frame: int = _MIB  # bytes per frame
    max_send_buffer: int = 4 * _MIB  # unsent bytes per client before it is dropped as a slow consumer
    heartbeat_interval: float = 15.0  # seconds
    heartbeat_timeout: float = 45.0  # seconds, > heartbeat_interval
    handshake_timeout: float = 10.0  # seconds until hello + login must be done
    max_connections: int = 20_000
    max_inflight: int = 1024  # requests queued per connection
    event_buffer: int = 10_000  # events kept per topic for resume
    login_max_failures: int = 5  # per account and per source address within login_window
    login_window: float = 60.0
    login_lockout: float = 60.0
    token_ttl: float = 43_200.0  # seconds a resume token is valid
    peers: tuple[str, ...] = ()  # "host:port" of the other nodes' SimProt, told to clients


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    dsn: str = ""  # empty = embedded PostgreSQL (pgserver) in embedded_dir
    embedded_dir: str = "var/pgdata"  # relative to the current working directory
    pool_min: int = 1
    pool_max: int = 10
    command_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "INFO"
    format: str = "json"


@dataclass(frozen=True, slots=True)
class BootstrapSettings:
    """Demo only: create this admin on a fresh database that has none (empty password = generate)."""

    admin_user: str = ""
    admin_password: str = ""
    demo_acd: bool = False  # on an empty ACD configuration, create the demo skills, projects and agents


@dataclass(frozen=True, slots=True)
class SipSettings:
    """The SIP trunk and the agents' phones (docs/sip.md)."""

    enabled: bool = False
    host: str = "127.0.0.1"          # listen address for UDP and TCP
    port: int = 5060                 # the same port for UDP and TCP; 0 = pick a free one
    advertise: str = ""              # host[:port] put in Via/Contact when it differs from host:port (NAT)
    trunk_peers: tuple[str, ...] = ("127.0.0.1",)   # addresses or networks (CIDR) allowed to call pilots
    realm: str = "ctiserver"         # digest realm for phones that REGISTER
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")   # offered to phones, in this order
    max_message: int = 65535         # bytes per SIP message
    rate_limit: float = 500.0        # requests per second per source address (burst: twice that)
    max_calls: int = 20_000          # calls in progress; beyond, new INVITEs get 503
    demo_phones: bool = False        # demo only: agent1..agent4 at workplaces with static phones, logged in
    test_pilot: str = ""             # calls to this number are answered by the core itself (trunk checks, bench)
    ivr_uri: str = ""                # the IVR (any SIP UAS): calls to ivr_pilots go there first; "" = none
    ivr_pilots: tuple[str, ...] = ("100",)
    ivr_routing: str = "ivr"         # "ivr": the IVR queues the call (SimProt ivr.route); "entry_rules": on answer
    ivr_ping_interval: float = 20.0  # seconds between in-dialog OPTIONS to each IVR leg (0: never)
    outbound_uri: str = ""           # agents' outbound calls: "sip:{number}@pbx-address"; "" = not allowed
    keepalive: tuple[str, ...] = ()  # trunk peers pinged with OPTIONS: "udp:host:port" or "tcp:host:port"
    keepalive_interval: float = 30.0


@dataclass(frozen=True, slots=True)
class IvrSettings:
    """The ivr-engine daemon (docs/ivr.md): its SIP side, its media, and how it reaches the core."""

    host: str = "127.0.0.1"          # SIP (UDP and TCP) and RTP listen address
    port: int = 5070                 # SIP; 0 = pick a free one
    advertise: str = ""              # host[:port] in Contact when it differs (NAT)
    rtp_port_min: int = 40000        # RTP ports, one per leg (even numbers; RTCP is not received)
    rtp_port_max: int = 49999
    trunk_peers: tuple[str, ...] = ("127.0.0.1",)   # who may send INVITEs (the core's address)
    core: tuple[str, ...] = ("127.0.0.1:7400",)     # the core's SimProt servers, host:port
    user: str = "ivr"                # the IVR's service account on the core
    password_file: str = "var/ivr.secret"   # its password (one line); the demo bootstrap writes it
    prompts: str = "prompts"         # the IVR repository folder: <prompts>/<language>/<name>.wav
    tts: str = "espeak-ng"           # text-to-speech command (IVR-4); "" = tts: prompts are an error
    tts_cache: str = "var/tts"       # generated speech, by voice and text
    variables: tuple[str, ...] = ()  # "name=value" given to every flow (e.g. ehic_base=http://...)
    max_legs: int = 2000             # concurrent calls; beyond, INVITEs get 503
    config_refresh: float = 30.0     # seconds between re-reading the flows and holidays from the core


@dataclass(frozen=True, slots=True)
class Settings:
    node: NodeSettings = field(default_factory=NodeSettings)
    simprot: SimProtSettings = field(default_factory=SimProtSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    log: LogSettings = field(default_factory=LogSettings)
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)
    sip: SipSettings = field(default_factory=SipSettings)
    ivr: IvrSettings = field(default_factory=IvrSettings)


_SECTIONS: dict[str, type] = {f.name: f.type for f in fields(Settings)}  # type: ignore[misc]
_TYPE_NAMES: dict[Any, str] = {
    bool: "boolean", int: "integer", float: "number", str: "string", _STRINGS: "array of strings",
}
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
Layer = dict[str, dict[str, Any]]


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                  overrides: Sequence[str] = ()) -> Settings:
    """Merge defaults < TOML file at `path` < `env` (default os.environ) < `overrides`, then validate."""
    file_layer = _file_layer(path) if path is not None else {}
    env_layer = _env_layer(os.environ if env is None else env)
    settings = _build([file_layer, env_layer, _override_layer(overrides)])
    _validate(settings)
    return settings


# --- reading the layers ------------------------------------------------------------------------------

def _unknown(name: str, known: Iterable[str], what: str) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f"unknown {what}" + (f" (did you mean {match[0]!r}?)" if match else "")


def _section_class(section: str, where: str) -> type:
    if section not in _SECTIONS:
        raise ConfigError(section, _unknown(section, _SECTIONS, "section") + where)
    return _SECTIONS[section]


def _field_type(section: str, key: str, where: str) -> Any:
    types = {f.name: f.type for f in fields(_section_class(section, where))}
    if key not in types:
        raise ConfigError(f"{section}.{key}", _unknown(key, types, "key") + where)
    return types[key]


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _describe(value: object) -> str:
    """Name a TOML value's type (and show scalars) for an error message."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"{'integer' if isinstance(value, int) else 'float'} {value}"
    if isinstance(value, str):
        return f"string {_short(value)}"
    names: dict[type, str] = {list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


def _finite(key: str, value: float, where: str) -> float:
    if not math.isfinite(value):
        raise ConfigError(key, f"expected a finite number, got {value}{where}")
    return value


def _from_toml(key: str, typ: Any, value: object) -> Any:
    """Check a TOML value against the field type; ints are accepted for floats, bools never for ints."""
    if typ is float and isinstance(value, int | float) and not isinstance(value, bool):
        return _finite(key, float(value), "")
    if typ is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if typ in (str, bool) and isinstance(value, typ):
        return value
    if typ == _STRINGS and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(key, f"expected {_TYPE_NAMES[typ]}, got {_describe(value)}")


def _from_text(key: str, typ: Any, text: str, where: str) -> Any:
    """Parse an environment or override value by the field type."""
    if typ is str:
        return text
    if typ == _STRINGS:
        return tuple(item.strip() for item in text.split(",") if item.strip())
    stripped = text.strip()
    try:
        if typ is bool:
            return _BOOLS[stripped.lower()]
        if typ is int:
            return int(stripped)
        return _finite(key, float(stripped), where)
    except (KeyError, ValueError):
        raise ConfigError(key, f"expected {_TYPE_NAMES[typ]}, got {_short(text)}{where}") from None


def _file_layer(path: str | os.PathLike[str]) -> Layer:
    name = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError("<file>", f"cannot read {name}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("<file>", f"{name}: invalid TOML: {exc}") from None
    layer: Layer = {}
    for section, table in data.items():
        _section_class(section, "")
        if not isinstance(table, dict):
            raise ConfigError(section, f"expected a [{section}] table, got {_describe(table)}")
        for key, value in table.items():
            typ = _field_type(section, key, "")
            layer.setdefault(section, {})[key] = _from_toml(f"{section}.{key}", typ, value)
    return layer


def _put(layer: Layer, section: str, key: str, text: str, where: str) -> None:
    typ = _field_type(section, key, where)
    layer.setdefault(section, {})[key] = _from_text(f"{section}.{key}", typ, text, where)


def _env_layer(env: Mapping[str, str]) -> Layer:
    """Read CTISERVER_<SECTION>__<KEY>; other CTISERVER_ variables (without "__") are not ours."""
    layer: Layer = {}
    for name, text in sorted(env.items()):
        rest = name[len(ENV_PREFIX):]
        if name.startswith(ENV_PREFIX) and "__" in rest:
            section, _, key = rest.lower().partition("__")
            _put(layer, section, key, text, f" (from environment variable {name})")
    return layer


def _override_layer(overrides: Sequence[str]) -> Layer:
    layer: Layer = {}
    for item in overrides:
        name, eq, text = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not (eq and dot and section and key):
            # Only the part before "=" is echoed: the value may be a secret.
            raise ConfigError("<override>", f"expected section.key=value, got {_short(name)}")
        _put(layer, section, key, text, " (from command-line override)")
    return layer


def _build(layers: Sequence[Layer]) -> Settings:
    merged: Layer = {name: {} for name in _SECTIONS}
    for layer in layers:
        for section, values in layer.items():
            merged[section].update(values)
    return Settings(**{name: cls(**merged[name]) for name, cls in _SECTIONS.items()})


# --- validation ---------------------------------------------------------------------------------------

def _require(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)


def _bounds(key: str, value: float, low: float, high: float | None = None) -> None:
    if high is None:
        _require(value >= low, key, f"must be at least {low}, got {value}")
    else:
        _require(low <= value <= high, key, f"must be between {low} and {high}, got {value}")


def _positive(key: str, value: float) -> None:
    _require(value > 0, key, f"must be greater than 0, got {value}")


def _one_of(key: str, value: str, allowed: Sequence[str]) -> None:
    _require(value in allowed, key, f"expected one of {', '.join(allowed)}, got {_short(value)}")


def _peer_ok(entry: str) -> bool:
    host, sep, port = entry.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # IPv6 literal, RFC 3986 style
    elif ":" in host:
        return False
    valid_port = port.isascii() and port.isdigit() and 1 <= int(port) <= 65535
    return bool(sep and host and valid_port) and not any(c.isspace() for c in host)


def _validate_node(node: NodeSettings) -> None:
    _require(bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", node.name)), "node.name",
             f"expected 1-63 letters, digits, '.', '_' or '-', got {_short(node.name)}")
    _one_of("node.environment", node.environment, ENVIRONMENTS)


def _validate_simprot(sp: SimProtSettings) -> None:
    _require(bool(sp.host), "simprot.host", "must not be empty (use 0.0.0.0 or :: for all interfaces)")
    _bounds("simprot.port", sp.port, 0, 65535)
    missing, other = ("tls_key", "tls_cert") if sp.tls_cert else ("tls_cert", "tls_key")
    _require(bool(sp.tls_cert) == bool(sp.tls_key), f"simprot.{missing}", f"must be set with simprot.{other}")
    for name in ("tls_cert", "tls_key"):
        path = getattr(sp, name)
        _require(not path or os.path.isfile(path), f"simprot.{name}", f"file not found: {path}")
    _bounds("simprot.max_frame", sp.max_frame, 1024, 16 * _MIB)
    _require(sp.max_send_buffer >= sp.max_frame, "simprot.max_send_buffer",
             f"must be at least simprot.max_frame ({sp.max_frame}), got {sp.max_send_buffer}")
    _positive("simprot.heartbeat_interval", sp.heartbeat_interval)
    _require(sp.heartbeat_timeout > sp.heartbeat_interval, "simprot.heartbeat_timeout",
             f"must be greater than simprot.heartbeat_interval ({sp.heartbeat_interval}), "
             f"got {sp.heartbeat_timeout}")
    for name in ("handshake_timeout", "login_window", "login_lockout", "token_ttl"):
        _positive(f"simprot.{name}", getattr(sp, name))
    for name in ("max_connections", "max_inflight", "event_buffer", "login_max_failures"):
        _bounds(f"simprot.{name}", getattr(sp, name), 1)
    for entry in sp.peers:
        _require(_peer_ok(entry), "simprot.peers",
                 f"expected host:port with a port 1-65535, got {_short(entry)}")


def _validate_http(http: HttpSettings, sp: SimProtSettings) -> None:
    _require(bool(http.host), "http.host", "must not be empty (use 0.0.0.0 or :: for all interfaces)")
    _bounds("http.port", http.port, 0, 65535)
    _require(not (http.port and http.port == sp.port and http.host == sp.host), "http.port",
             f"same address as simprot ({sp.host}:{sp.port})")


def _validate_database(db: DatabaseSettings) -> None:
    # The DSN is never echoed: it may carry a password.
    _require(not db.dsn or db.dsn.startswith(("postgresql://", "postgres://")), "database.dsn",
             "expected a postgresql:// URI, or empty for the embedded database")
    _require(bool(db.dsn or db.embedded_dir), "database.embedded_dir",
             "must not be empty when database.dsn is empty")
    _bounds("database.pool_min", db.pool_min, 1, 200)
    _bounds("database.pool_max", db.pool_max, 1, 200)
    _require(db.pool_min <= db.pool_max, "database.pool_min",
             f"must not exceed database.pool_max ({db.pool_max}), got {db.pool_min}")
    _positive("database.command_timeout", db.command_timeout)


def _validate_bootstrap(boot: BootstrapSettings, environment: str) -> None:
    _require(not boot.admin_user or environment == "demo", "bootstrap.admin_user",
             f"only allowed when node.environment is 'demo', not {environment!r}")
    _require(bool(boot.admin_user) or not boot.admin_password, "bootstrap.admin_password",
             "set without bootstrap.admin_user")
    _require(not boot.demo_acd or environment == "demo", "bootstrap.demo_acd",
             "only allowed when node.environment is 'demo'")


def _validate(s: Settings) -> None:
    _validate_node(s.node)
    _validate_simprot(s.simprot)
    _validate_http(s.http, s.simprot)
    _validate_database(s.database)
    _one_of("log.level", s.log.level, LOG_LEVELS)
    _one_of("log.format", s.log.format, LOG_FORMATS)
    _validate_bootstrap(s.bootstrap, s.node.environment)
    _validate_sip(s.sip, s.node.environment)
    _validate_ivr(s.ivr)


def _validate_ivr(ivr: IvrSettings) -> None:
    import ipaddress
    _bounds("ivr.port", ivr.port, 0, 65535)
    _bounds("ivr.rtp_port_min", ivr.rtp_port_min, 1024, 65534)
    _require(ivr.rtp_port_min % 2 == 0, "ivr.rtp_port_min",
             f"expected an even port (RTP even, RTCP odd), got {ivr.rtp_port_min}")
    _bounds("ivr.rtp_port_max", ivr.rtp_port_max, ivr.rtp_port_min + 1, 65535)
    _require((ivr.rtp_port_max - ivr.rtp_port_min + 1) // 2 >= ivr.max_legs, "ivr.rtp_port_max",
             f"fewer RTP/RTCP port pairs than ivr.max_legs ({ivr.max_legs}) need")
    _bounds("ivr.max_legs", ivr.max_legs, 1, 100_000)
    _bounds("ivr.config_refresh", ivr.config_refresh, 1.0, 3600.0)
    _require(bool(ivr.core), "ivr.core", "at least one host:port")
    for entry in ivr.core:
        _require(_peer_ok(entry), "ivr.core", f"expected host:port, got {_short(entry)}")
    for entry in ivr.trunk_peers:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError("ivr.trunk_peers", f"expected an IP address or network, got {_short(entry)}") from None
    for entry in ivr.variables:
        _require(bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,39}=.*", entry)), "ivr.variables",
                 f"expected name=value, got {_short(entry)}")
    _require(bool(ivr.user), "ivr.user", "the IVR's account name is needed")


def _validate_sip(sip: SipSettings, environment: str) -> None:
    import ipaddress

    _require(bool(sip.host), "sip.host", "must not be empty (use 0.0.0.0 or :: for all interfaces)")
    _bounds("sip.port", sip.port, 0, 65535)
    for entry in sip.trunk_peers:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError("sip.trunk_peers", f"expected an IP address or network, got {_short(entry)}") from None
    _require(bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", sip.realm)), "sip.realm",
             f"expected 1-63 letters, digits, '.', '_' or '-', got {_short(sip.realm)}")
    _require(bool(sip.digest_algorithms) and all(a in ("SHA-256", "MD5") for a in sip.digest_algorithms)
             and len(set(sip.digest_algorithms)) == len(sip.digest_algorithms), "sip.digest_algorithms",
             f"expected SHA-256 and/or MD5, each once, got {list(sip.digest_algorithms)}")
    _bounds("sip.max_message", sip.max_message, 1500, 1 << 20)
    _positive("sip.rate_limit", sip.rate_limit)
    _bounds("sip.max_calls", sip.max_calls, 1)
    _require(not sip.test_pilot or sip.test_pilot.isdigit() and len(sip.test_pilot) <= 20, "sip.test_pilot",
             f"expected up to 20 digits, got {_short(sip.test_pilot)}")
    _require(not sip.ivr_uri or bool(re.fullmatch(r"sips?:[^\s<>\"]+", sip.ivr_uri)), "sip.ivr_uri",
             f"expected a sip: URI, got {_short(sip.ivr_uri)}")
    _require(not sip.outbound_uri or bool(re.fullmatch(r"sips?:[^\s<>\"]*\{number\}[^\s<>\"]*", sip.outbound_uri)),
             "sip.outbound_uri", f"expected a sip: URI with {{number}} in it, got {_short(sip.outbound_uri)}")
    for entry in sip.keepalive:
        transport, _, rest = entry.partition(":")
        _require(transport in ("udp", "tcp") and _peer_ok(rest), "sip.keepalive",
                 f"expected udp:host:port or tcp:host:port, got {_short(entry)}")
    _bounds("sip.keepalive_interval", sip.keepalive_interval, 0.1, 3600)
    _require(sip.ivr_ping_interval == 0 or 0.1 <= sip.ivr_ping_interval <= 3600, "sip.ivr_ping_interval",
             f"expected 0 (never) or 0.1..3600 seconds, got {sip.ivr_ping_interval}")
    _require(sip.ivr_routing in ("ivr", "entry_rules"), "sip.ivr_routing",
             f"expected 'ivr' or 'entry_rules', got {_short(sip.ivr_routing)}")
    for pilot in sip.ivr_pilots:
        _require(pilot.isdigit() and len(pilot) <= 20, "sip.ivr_pilots", f"expected digits, got {_short(pilot)}")
    _require(not sip.demo_phones or environment == "demo", "sip.demo_phones",
             "only allowed when node.environment is 'demo'")

# --- showing the effective configuration ----------------------------------------------------------------

def mask_dsn(dsn: str) -> str:
    """Replace the password of a postgresql:// URI (user:PASSWORD@ or ?password=) with "***"."""
    scheme, sep, rest = dsn.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if sep and at and ":" in userinfo:
        dsn = f"{scheme}://{userinfo.partition(':')[0]}:***@{hostpart}"
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\g<1>***", dsn)


def settings_to_dict(s: Settings) -> dict[str, dict[str, Any]]:
    """The effective configuration as plain data (lists, not tuples) with secrets masked."""
    out: dict[str, dict[str, Any]] = {}
    for name in _SECTIONS:
        section = dataclasses.asdict(getattr(s, name))
        out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in section.items()}
    out["database"]["dsn"] = mask_dsn(s.database.dsn)
    if s.bootstrap.admin_password:
        out["bootstrap"]["admin_password"] = "***"
    return out
