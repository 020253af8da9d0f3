"""Secrets kept out of every message: `redact` removes what may be a credential from any text (an error, a log line,
a metadata value) before it is shown or stored, wherever it came from (our own messages, GDAL's, a parser's).

Removed: the user info of a URL (`https://user:password@host` -> `https://<redacted>@host`), a URL's whole query
string (it carries signatures and tokens: `?X-Amz-Signature=...` -> `?<redacted>`), a credential-like parameter or
header anywhere (`token=...`, `Authorization: Bearer ...`) and AWS access key ids. Provenance records addresses the
same way (`provenance.redact_url`, which also names what it removed). No Dagster.
"""

import contextlib
import re

REDACTED = "<redacted>"
_SCHEME = r"[a-zA-Z][a-zA-Z0-9+.-]*://"
_USERINFO = re.compile(rf"(?P<scheme>{_SCHEME})(?P<userinfo>[^/\s@?#'\"<>]+)@")
_QUERY = re.compile(rf"(?P<url>{_SCHEME}[^\s?#'\"<>]*)\?(?P<query>[^\s#'\"<>]+)")
# Parameter names that carry a credential, as `name=value` (a query string cut out of its URL, a config line).
_SECRET_PARAMETERS = re.compile(
    r"(?i)(?P<name>\b(?:x-amz-[a-z-]+|x-goog-[a-z-]+|signature|sig|[a-z_]*token|api[_-]?key|access[_-]?key[_-]?id"
    r"|secret[_-]?access[_-]?key|client[_-]?secret|password|passwd|pwd|secret|awsaccesskeyid|credential))"
    r"(?P<sep>\s*[=:]\s*)(?P<value>[^&\s'\",;:]+)"
)
_AUTHORIZATION = re.compile(r"(?i)(?P<name>\bauthorization\s*:\s*)(?P<value>(?:bearer|basic|token)?\s*\S+)")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{12,}")


def redact(text: str) -> str:
    """`text` with every credential-like part replaced by `<redacted>` (see the module docstring)."""
    if not text:
        return text
    text = _QUERY.sub(lambda m: f"{m['url']}?{REDACTED}", text)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    text = _AUTHORIZATION.sub(lambda m: f"{m['name']}{REDACTED}", text)
    text = _SECRET_PARAMETERS.sub(
        lambda m: m[0] if m["value"] == REDACTED else f"{m['name']}{m['sep']}{REDACTED}", text
    )
    return _AWS_KEY_ID.sub(REDACTED, text)


def has_secret(text: str) -> bool:
    """Whether `redact` would change `text`."""
    return isinstance(text, str) and redact(text) != text


def redact_value(value):
    """`value` (text, or dicts and lists of them, e.g. metadata) with every text redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    return value


def _message(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ is no message
        return ""


def _scrub_one(error: BaseException) -> None:
    with contextlib.suppress(AttributeError, TypeError):  # some (GDAL's) have read-only args: cut if still secret
        error.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in error.args)
    for name in ("errmsg", "strerror", "filename", "filename2", "msg", "problem", "context"):
        value = getattr(error, name, None)
        if isinstance(value, str) and has_secret(value):
            with contextlib.suppress(AttributeError):  # read-only: the chain is cut before this error instead
                setattr(error, name, redact(value))


def scrub_exception(error: BaseException) -> BaseException:
    """Redact, in place, the message of `error` and of every exception it chains to (`__cause__`, `__context__`):
    Dagster stores the whole chain of a step's failure (run storage, the UI). A chained exception whose message
    still holds a secret afterwards (a message not built from its args) is cut from the chain. Returns `error`."""
    seen, current = set(), error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        _scrub_one(current)
        following = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        if following is not None:
            _scrub_one(following)
            if has_secret(_message(following)):
                current.__cause__, current.__context__, current.__suppress_context__ = None, None, True
                following = None
        current = following
    return error
