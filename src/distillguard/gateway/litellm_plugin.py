"""distillguard inside the LiteLLM proxy: record every exchange, apply the same decisions.

Two LiteLLM callbacks share one :class:`PluginRuntime` (an :class:`Enforcer`, a
:class:`Recorder` and the deployment's keyed :class:`Hasher`) per process:

* :class:`DistillguardLogger`, a ``CustomLogger``: on every success and failure
  it maps LiteLLM's ``StandardLoggingPayload`` to a RawEvent with the same code
  that reads LiteLLM log files (:func:`distillguard.ingest.litellm.payload_event`)
  and hands it to the recorder, which stores it and feeds online scoring.
* :class:`DistillguardGuardrail`, a ``CustomGuardrail`` run by the proxy
  ``pre_call`` and ``post_call``: it builds a :class:`RequestInfo` from the
  request and the caller's ``UserAPIKeyAuth``, asks the enforcer for a
  :class:`Decision` and applies it: 429 (throttle) or 403 (block) with an
  OpenAI-style error body, logprobs stripped, ``n`` and max tokens clamped,
  reasoning content withheld from the response (streamed or not).  Shadow
  (dry-run) decisions are only logged.

The runtime comes from the distillguard gateway config file named by
``$DISTILLGUARD_LITELLM_CONFIG`` (see docs/litellm.md), or from
:func:`configure` when embedding.  Nothing is read from the working directory.

LiteLLM proxy config.yaml::

    litellm_settings:
      callbacks: distillguard.gateway.litellm_plugin.recorder_callback
    guardrails:
      - guardrail_name: distillguard
        litellm_params:
          guardrail: distillguard.gateway.litellm_plugin.DistillguardGuardrail
          mode: [pre_call, post_call]
          default_on: true

Example:
    >>> from distillguard.gateway.litellm_plugin import PluginRuntime, configure   # doctest: +SKIP
    >>> configure(PluginRuntime(enforcer=my_enforcer, recorder=my_recorder))      # doctest: +SKIP
    >>> litellm.callbacks = [DistillguardLogger()]                                  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException
from litellm.integrations.custom_guardrail import CustomGuardrail
from litellm.integrations.custom_logger import CustomLogger

from distillguard.errors import ConfigError
from distillguard.gateway.app import REASONING_KEYS, clamp_request, estimate_tokens, strip_logprobs
from distillguard.gateway.app import withhold_reasoning as gateway_withhold_reasoning
from distillguard.gateway.types import MAX_TOKEN_KEYS, Action, Decision, Enforcer, Recorder, RequestInfo
from distillguard.ingest.lines import FieldError
from distillguard.ingest.litellm import payload_event
from distillguard.normalize import account_key
from distillguard.privacy import Hasher

log = logging.getLogger("distillguard.litellm")

#: Environment variable naming the distillguard gateway config file the plugin loads.
CONFIG_ENV = "DISTILLGUARD_LITELLM_CONFIG"

#: Where the guardrail leaves its decision in the request's metadata for the post-call hooks.
DECISION_KEY = "distillguard_decision"

#: LiteLLM call types -> the OpenAI endpoint the enforcer is told about.
_ENDPOINTS = {
    "completion": "/v1/chat/completions",
    "acompletion": "/v1/chat/completions",
    "text_completion": "/v1/completions",
    "atext_completion": "/v1/completions",
    "embedding": "/v1/embeddings",
    "aembedding": "/v1/embeddings",
    "responses": "/v1/responses",
    "aresponses": "/v1/responses",
}

#: Request keys LiteLLM's proxy adds to the body for its own use; not shown to the enforcer.
_INTERNAL_KEYS = frozenset({
    "metadata", "proxy_server_request", "secret_fields", "guardrails", "guardrail_to_apply",
    "user_api_key_dict", "mock_response", "standard_callback_dynamic_params",
})  # fmt: skip

#: Reasoning fields of LiteLLM's response objects: the gateway's, plus LiteLLM's own ``reasoning_items``.
_REASONING_ATTRS = (*REASONING_KEYS, "reasoning_items")


@dataclass
class PluginRuntime:
    """The enforcer, recorder and hasher the LiteLLM callbacks of one process share.

    ``hasher`` must be the deployment's (the one the recorder normalizes with), so
    that an account keyed by its API key here is the account online scoring sees.

    Example:
        >>> from distillguard.gateway.app import AllowAll, NullRecorder
        >>> rt = PluginRuntime(enforcer=AllowAll(), recorder=NullRecorder(), hasher=Hasher(b"secret"))
        >>> configure(rt); current_runtime() is rt
        True
        >>> configure(None)
    """

    enforcer: Enforcer
    recorder: Recorder | None
    hasher: Hasher = field(default_factory=Hasher.from_config)
    close: Callable[[], None] | None = None  # what shuts the runtime down (default: recorder.close)

    @classmethod
    def from_config_file(cls, path: str) -> PluginRuntime:
        """The enforcer and the (started) recorder ``distillguard serve`` builds from this gateway config.

        Only the enforcement and recording settings are used (``policy_path``,
        ``redis_url``, ``model_path``, ``decisions_dir``, ``online_end_users``, ``store_path``, ``wal_dir``,
        ``secret_file``, ``keep_text``, the flush and fsync periods); LiteLLM
        does the proxying, the keys and the upstream.
        """
        from distillguard.gateway.config import GatewayConfig
        from distillguard.gateway.recording import open_recording

        hasher, enforcer, recorder, close = open_recording(GatewayConfig.from_file(path))
        return cls(enforcer=enforcer, recorder=recorder, hasher=hasher, close=close)

    def shutdown(self) -> None:
        """Flush the recorder to the store and stop background work."""
        if self.close is not None:
            self.close()
        elif self.recorder is not None:
            self.recorder.close()


_runtime: PluginRuntime | None = None
_runtime_lock = threading.Lock()


def configure(runtime: PluginRuntime | None) -> None:
    """Use ``runtime`` for every distillguard callback in this process (None forgets it).

    Example:
        >>> configure(None)
    """
    global _runtime
    with _runtime_lock:
        _runtime = runtime


def current_runtime() -> PluginRuntime:
    """The configured runtime, built on first use from ``$DISTILLGUARD_LITELLM_CONFIG``."""
    global _runtime
    rt = _runtime
    if rt is not None:
        return rt
    with _runtime_lock:
        if _runtime is None:
            path = os.environ.get(CONFIG_ENV)
            if not path:
                raise ConfigError(
                    f"distillguard LiteLLM plugin: set ${CONFIG_ENV} to a distillguard gateway config file "
                    "(policy_path, store_path, wal_dir, ...), or call distillguard.gateway.litellm_plugin.configure()"
                )
            _runtime = PluginRuntime.from_config_file(path)
            atexit.register(_runtime.shutdown)  # store what is queued; the WAL covers a hard kill
            log.info("distillguard LiteLLM plugin: loaded %s", path)
        return _runtime


# --- recording ---------------------------------------------------------------------------


class DistillguardLogger(CustomLogger):
    """Records every LiteLLM exchange (success and failure) through the distillguard recorder.

    The recorded request parameters are what the client asked for, not what
    the guardrail let through: a stripped ``logprobs`` is still a logprobs
    request to online scoring.

    Example:
        >>> import litellm                                    # doctest: +SKIP
        >>> litellm.callbacks = [DistillguardLogger()]        # doctest: +SKIP
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        # LiteLLM's proxy logs some failures (e.g. a guardrail refusal) twice; record each once.
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._recent_lock = threading.Lock()

    def record_payload(self, kwargs: dict[str, Any], exception: BaseException | None = None) -> None:
        """Record the ``standard_logging_object`` LiteLLM built for this call, if any."""
        payload = kwargs.get("standard_logging_object")
        if not payload:
            return
        try:
            event = payload_event(payload)
        except FieldError as exc:
            log.warning("distillguard: unusable LiteLLM payload %s: field %s: %s", payload.get("id"), exc.field, exc.reason)
            return
        if self._seen(str(payload.get("litellm_call_id") or event.get("event_id")), str(event.get("status"))):
            return
        stash = _stash(kwargs.get("litellm_params") or {})
        event.update(stash.get("asked") or {})
        extra: dict[str, Any] = {
            "endpoint": _ENDPOINTS.get(str(payload.get("call_type")), "/" + str(payload.get("call_type"))),
            "http_status": 200 if event.get("status") == "success" else _status_of(exception, payload),
            "error": None if event.get("status") == "success" else (payload.get("error_str") or "failure")[:200],
            "decision": stash.get("decision"),
        }
        recorder = current_runtime().recorder
        if recorder is not None:
            recorder.record(event, extra)

    def _seen(self, call_id: str, status: str) -> bool:
        key = (call_id, status)
        with self._recent_lock:
            if key in self._recent:
                return True
            self._recent[key] = None
            if len(self._recent) > 4096:
                self._recent.popitem(last=False)
        return False

    # LiteLLM calls the async pair for async calls (the proxy) and the sync pair otherwise.
    def log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: D102
        self._safely(kwargs, None)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):  # noqa: D102
        self._safely(kwargs, kwargs.get("exception"))

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: D102
        self._safely(kwargs, None)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):  # noqa: D102
        self._safely(kwargs, kwargs.get("exception"))

    def _safely(self, kwargs: dict[str, Any], exception: BaseException | None) -> None:
        # A logging callback must never break the call it logs; the record is lost, loudly.
        try:
            self.record_payload(kwargs, exception)
        except Exception:
            log.exception("distillguard: failed to record a LiteLLM exchange")


def _stash(litellm_params: dict[str, Any]) -> dict[str, Any]:
    """What the guardrail left in the request metadata for this call (empty when it let it through)."""
    for key in ("metadata", "litellm_metadata"):
        block = litellm_params.get(key)
        if isinstance(block, dict) and isinstance(block.get(DECISION_KEY), dict):
            return block[DECISION_KEY]
    return {}


def _status_of(exception: BaseException | None, payload: dict[str, Any]) -> int | None:
    status = getattr(exception, "status_code", None)
    if status is None:
        code = (payload.get("error_information") or {}).get("error_code")
        status = int(code) if isinstance(code, str) and code.isdigit() else code
    return status if isinstance(status, int) else None


#: The instance to name in ``litellm_settings: callbacks:`` (LiteLLM wants an instance there).
recorder_callback = DistillguardLogger()


# --- enforcement -------------------------------------------------------------------------


def request_info(auth: Any, data: dict[str, Any], call_type: str, hasher: Hasher) -> RequestInfo:
    """The :class:`RequestInfo` of a LiteLLM proxy request.

    The account is the key's ``user_id``, else the key (its hash), else the end
    user: the same rule :func:`distillguard.normalize.account_key` applies to the
    recorded exchange, so decisions and online scoring agree on who is who.

    Example:
        >>> from litellm.proxy._types import UserAPIKeyAuth
        >>> info = request_info(UserAPIKeyAuth(user_id="u1", api_key="hashed"), {"model": "m", "messages": []},
        ...                     "acompletion", Hasher(b"secret"))
        >>> info.account_id, info.endpoint
        ('u1', '/v1/chat/completions')
    """
    metadata = data.get("metadata") or data.get("litellm_metadata") or {}
    body = {k: v for k, v in data.items() if k not in _INTERNAL_KEYS and not k.startswith("litellm_")}
    key_hash = hasher.hash(getattr(auth, "api_key", None) or metadata.get("user_api_key_hash"))
    end_user = getattr(auth, "end_user_id", None) or body.get("user") or body.get("safety_identifier")
    user_id = getattr(auth, "user_id", None) or metadata.get("user_api_key_user_id")
    account = account_key(user_id, key_hash, hasher.hash(end_user))
    headers = (data.get("proxy_server_request") or {}).get("headers") or metadata.get("headers") or {}
    return RequestInfo(
        account_id=account,
        endpoint=_ENDPOINTS.get(str(call_type), "/" + str(call_type)),
        body=body,
        api_key_hash=key_hash,
        ip=metadata.get("requester_ip_address") or None,
        user_agent=headers.get("user-agent") or headers.get("User-Agent"),
        end_user=end_user,
        est_tokens=estimate_tokens(body),
        ts=time.time(),
    )


def refusal(decision: Decision) -> HTTPException:
    """The HTTP exception LiteLLM's proxy turns into the refusal: 429 or 403, OpenAI-style body.

    Example:
        >>> exc = refusal(Decision(actions=(Action.THROTTLE,), reason="slow down", retry_after_s=2.5))
        >>> exc.status_code, exc.headers["retry-after"], exc.detail["error"]["type"]
        (429, '3', 'rate_limit_error')
    """
    headers = {"retry-after": decision.retry_after_header} if decision.retry_after_s else None
    return HTTPException(status_code=decision.http_status, detail=decision.error_body(), headers=headers)


def apply_to_request(decision: Decision, data: dict[str, Any], endpoint: str) -> None:
    """Strip logprobs and clamp ``n`` / max tokens in the request ``data`` in place, as the gateway does.

    Example:
        >>> d = {"logprobs": True, "top_logprobs": 5, "n": 4}
        >>> apply_to_request(Decision(actions=(Action.STRIP_LOGPROBS, Action.CLAMP), clamp={"n": 1}), d, "/v1/chat/completions")
        >>> d
        {'n': 1}
    """
    if Action.STRIP_LOGPROBS in decision.actions:
        strip_logprobs(data)
    if Action.CLAMP in decision.actions:
        clamp_request(data, endpoint, decision.clamp)


def withhold_reasoning(response: Any) -> Any:
    """Drop reasoning content (``reasoning_content``, thinking blocks, reasoning items) from a response or chunk.

    Works on LiteLLM's ``ModelResponse`` / ``ModelResponseStream`` and on plain dicts
    (those through the gateway's own :func:`distillguard.gateway.app.withhold_reasoning`);
    returns ``response`` (changed in place).
    """
    if isinstance(response, dict):
        gateway_withhold_reasoning(response)
        return response
    choices = _get(response, "choices")
    if choices:
        for choice in choices:
            for part in ("message", "delta"):
                target = _get(choice, part)
                if target is not None:
                    _drop(target, _REASONING_ATTRS)
                    psf = _get(target, "provider_specific_fields")
                    if isinstance(psf, dict):
                        for name in _REASONING_ATTRS:
                            psf.pop(name, None)
    output = _get(response, "output")
    if isinstance(output, list):  # Responses API: reasoning is an output item of its own
        output[:] = [item for item in output if _get(item, "type") != "reasoning"]
    return response


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _drop(obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        if isinstance(obj, dict):
            obj.pop(name, None)
            continue
        if getattr(obj, name, None) is None:
            continue
        try:
            delattr(obj, name)  # LiteLLM's messages omit unset reasoning fields; match that
        except (AttributeError, TypeError):
            setattr(obj, name, None)


class DistillguardGuardrail(CustomGuardrail):
    """Applies distillguard decisions inside the LiteLLM proxy (``mode: [pre_call, post_call]``).

    Pre-call: refuse (429 / 403), strip logprobs, clamp ``n`` and max tokens.
    Post-call (and on each streamed chunk): withhold reasoning content when decided.
    A decision in shadow mode is logged, not applied.  If the enforcer fails, the
    request is let through and the failure logged: the guardrail must not take
    the API down with it.

    Example (config.yaml)::

        guardrails:
          - guardrail_name: distillguard
            litellm_params:
              guardrail: distillguard.gateway.litellm_plugin.DistillguardGuardrail
              mode: [pre_call, post_call]
              default_on: true
    """

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("guardrail_name", "distillguard")
        kwargs.setdefault("event_hook", ["pre_call", "post_call"])
        kwargs.setdefault("default_on", True)
        super().__init__(**kwargs)
        if _runtime is None and os.environ.get(CONFIG_ENV):
            current_runtime()  # fail at proxy start, not on the first request, when the config is wrong

    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):  # noqa: D102
        rt = current_runtime()
        info = request_info(user_api_key_dict, data, call_type, rt.hasher)
        try:
            decision = await rt.enforcer.decide(info)
        except Exception:
            log.exception("distillguard: enforcer failed for account %s; letting the request through", info.account_id)
            return data
        if decision.actions == (Action.ALLOW,):
            return data
        stash = _stash_in(data, decision)
        if decision.shadow:
            log.info("distillguard shadow: would %s account %s (%s)", _names(decision), info.account_id, decision.reason)
            return data
        if decision.refuses:
            log.info("distillguard: %s account %s (%s)", _names(decision), info.account_id, decision.reason)
            raise refusal(decision)
        if decision.enforced:
            stash["asked"] = asked_parameters(data)
            apply_to_request(decision, data, info.endpoint)
        return data

    async def async_post_call_success_hook(self, data, user_api_key_dict, response):  # noqa: D102
        if _withholds(data):
            withhold_reasoning(response)
        return response

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict, response, request_data
    ) -> AsyncGenerator[Any, None]:  # noqa: D102
        if not _withholds(request_data):
            async for chunk in response:
                yield chunk
            return
        async for chunk in response:
            yield withhold_reasoning(chunk)


def asked_parameters(data: dict[str, Any]) -> dict[str, Any]:
    """The request's logprobs / n / max tokens as the client sent them, under RawEvent field names.

    Example:
        >>> asked_parameters({"logprobs": True, "top_logprobs": 5, "max_completion_tokens": 900})
        {'logprobs': True, 'top_logprobs': 5, 'n': None, 'max_tokens': 900}
    """
    return {
        "logprobs": data.get("logprobs"),
        "top_logprobs": data.get("top_logprobs"),
        "n": data.get("n"),
        "max_tokens": next((data[k] for k in MAX_TOKEN_KEYS if data.get(k) is not None), None),
    }


def _stash_in(data: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """Leave the decision in the request metadata, where the post-call hooks and the logger find it."""
    key = "litellm_metadata" if isinstance(data.get("litellm_metadata"), dict) and "metadata" not in data else "metadata"
    metadata = data.get(key)
    if not isinstance(metadata, dict):
        metadata = data[key] = {}
    stash = metadata[DECISION_KEY] = {"decision": decision.to_dict()}
    return stash


def _withholds(data: dict[str, Any]) -> bool:
    if not isinstance(data, dict):
        return False
    stash = _stash({"metadata": data.get("metadata"), "litellm_metadata": data.get("litellm_metadata")})
    decision = stash.get("decision") or {}
    return not decision.get("shadow") and Action.WITHHOLD_REASONING.value in decision.get("actions", ())


def _names(decision: Decision) -> str:
    return "+".join(a.value for a in decision.actions)
