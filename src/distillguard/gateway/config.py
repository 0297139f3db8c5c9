"""Gateway configuration: one dataclass, filled from a YAML/JSON file and/or ``serve`` options.

Nothing is read implicitly from the working directory: every path is given.
Secrets are never values in the config: the upstream API key and the admin
token are read from environment variables whose *names* the config holds, so a
config file can be committed and ``ps`` shows no secret.

Example:
    >>> cfg = GatewayConfig(upstream_url="http://127.0.0.1:9000/v1", store_path="gw.duckdb", wal_dir="wal")
    >>> cfg.upstream_url, cfg.max_body_bytes
    ('http://127.0.0.1:9000/v1', 4194304)
    >>> GatewayConfig.from_mapping({"upstream_url": "http://u/v1", "port": 9001}).port
    9001
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import orjson
import yaml

from distillguard.errors import ConfigError


@dataclass(frozen=True)
class GatewayConfig:
    """Everything ``distillguard serve`` needs.  Paths are used as given (relative to the process cwd)."""

    upstream_url: str = "http://127.0.0.1:8001/v1"  # base URL including /v1, like an OpenAI client's base_url
    upstream_key_env: str | None = "DISTILLGUARD_UPSTREAM_KEY"  # env var holding the upstream key (server-side only)
    keys_file: str | None = None  # client API keys -> accounts (YAML/JSON, see gateway/keys.py)
    store_path: str = "distillguard-gateway.duckdb"
    wal_dir: str = "distillguard-wal"
    secret_file: str | None = None  # hashing secret (else $DISTILLGUARD_SECRET, else the demo secret)
    keep_text: bool = False  # also store clear prompt/completion text
    max_body_bytes: int = 4 * 1024 * 1024
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0  # longest silence from upstream (between stream chunks too) before 504
    upstream_connections: int = 256  # pooled keep-alive connections to the upstream
    # an idle upstream connection is closed after this: below the upstream's own keep-alive timeout
    # (uvicorn 5 s, nginx 75 s), or a request may go out on a connection the upstream is closing (502)
    upstream_keepalive_s: float = 4.0
    admin_token_env: str | None = "DISTILLGUARD_ADMIN_TOKEN"  # unset env var -> admin API disabled
    trust_forwarded_for: bool = False  # take the client IP from X-Forwarded-For (behind a trusted LB only)
    # recorder (durability: see docs/gateway.md)
    wal_fsync_interval_s: float = 0.05  # 0 = fsync inside every record() (power-loss safe, slower)
    # WAL -> store batch period and size: each flush costs DuckDB ~10-20 ms of CPU whatever its size
    flush_interval_s: float = 1.0
    flush_batch: int = 1024
    wal_segment_bytes: int = 16 * 1024 * 1024
    # normalization, the store and online scoring run in a child process (the recording worker) that
    # tails the WAL, so they never hold the serving process's GIL; false: threads of the serving process
    recorder_process: bool = True
    worker_nice: int = 10  # the worker's nice increment: under CPU contention the proxy goes first
    # enforcement (read by distillguard.gateway.enforcement.build_enforcer)
    policy_path: str | None = None
    redis_url: str | None = None
    model_path: str | None = None
    decisions_dir: str | None = None  # a `distillguard scan` output dir whose results load as decisions
    online_end_users: bool = True  # online scoring also judges the end users of shared accounts (resellers)
    host: str = "127.0.0.1"
    port: int = 8000

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "config") -> GatewayConfig:
        """Build from a dict (unknown keys are an error naming them)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown gateway setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> GatewayConfig:
        """Read a YAML or JSON file holding the fields of this class (top level or under ``gateway:``)."""
        p = Path(path)
        data = read_yaml_or_json(p, "gateway config") or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping of settings")
        if isinstance(data.get("gateway"), dict):
            data = data["gateway"]
        return cls.from_mapping(data, str(p))

    def with_overrides(self, **overrides: Any) -> GatewayConfig:
        """A copy with the non-None ``overrides`` applied (how ``serve`` options win over the file)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def upstream_key(self) -> str | None:
        """The upstream API key from ``$upstream_key_env`` (None when unset: no Authorization is sent)."""
        return os.environ.get(self.upstream_key_env) or None if self.upstream_key_env else None

    def admin_token(self) -> str | None:
        """The admin bearer token from ``$admin_token_env``; None disables the admin API."""
        return os.environ.get(self.admin_token_env) or None if self.admin_token_env else None


def read_yaml_or_json(path: Path, what: str, *, quote_errors: bool = True) -> Any:
    """The parsed content of a ``.json`` (else YAML) file; ConfigError naming ``what`` when missing or unparsable.

    ``quote_errors=False`` leaves the parser's message out (it may quote a line, e.g. of a keys file).
    """
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        return orjson.loads(path.read_bytes()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        detail = str(exc) if quote_errors else type(exc).__name__
        raise ConfigError(f"{path}: cannot parse the {what} ({detail})") from None
