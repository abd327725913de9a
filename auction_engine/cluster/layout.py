"""The Redis layout of the scale-out: key names, their parsing, and the coded error.

Every key lives under one namespace (default ``ae``). A case's keys share a hash tag
(``{case}``) so that a Redis Cluster keeps them in one slot, as the Lua scripts need:
``NS:{CASE}:lease`` (owner and token, with a TTL), ``NS:{CASE}:fence`` (the fencing
counter), ``NS:{CASE}:journal`` (the Stream of its records). ``NS:engines`` is the sorted
set of live engines; ``NS:inbox:ENGINE`` the commands for an engine,
``NS:replies:GATEWAY`` its answers to a gateway and ``NS:feed:{CASE}`` a case's durable
records are pub/sub channels (channel.py), as is ``NS:probe``, the health probe's.
docs/scale-out.md is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "ae"
CASE_PARTS = ("lease", "fence", "journal")  # the keys of one case
ENGINES = "engines"
FEED = "feed"
MAX_PROCESS_ID = 128  # characters of an engine's or a gateway's id
PROBE = "probe"  # the pub/sub channel the health probe publishes on (probe.py)
MAX_CASE_ID = 200  # bytes: a case id longer than this is not one of ours


class ClusterError(Exception):
    """A refusal or a problem on the Redis side: `code` names it (docs/scale-out.md)."""

    def __init__(self, code: str, message: str, *, key: str | None = None, entry: str | None = None) -> None:
        self.code = code
        self.message = message
        self.key = key
        self.entry = entry
        where = "" if key is None else f" at {key}" + ("" if entry is None else f" entry {entry}")
        super().__init__(f"{code}{where}: {message}")


def check_case_id(case_id: str) -> str:
    """`case_id` if it can name keys (no braces: they would break the hash tag); else
    `ClusterError("bad_case_id")`."""
    if type(case_id) is not str or not case_id or "{" in case_id or "}" in case_id \
            or len(case_id.encode()) > MAX_CASE_ID:
        raise ClusterError("bad_case_id", f"a case id is 1 to {MAX_CASE_ID} bytes without braces: {case_id!r:.60}")
    return case_id


def valid_process_id(process: str) -> bool:
    return 0 < len(process) <= MAX_PROCESS_ID and not any(c in process for c in "|{}\x00 \t\r\n")


def check_process_id(process: str) -> str:
    """An engine's or gateway's id if it can name its stream; else `ClusterError("bad_process_id")`."""
    if type(process) is not str or not valid_process_id(process):
        raise ClusterError("bad_process_id", f"a process id is 1 to {MAX_PROCESS_ID} characters without '|', "
                           f"braces or spaces: {process!r:.60}")
    return process


@dataclass(frozen=True, slots=True)
class Layout:
    """The key names under one namespace."""

    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        if not self.namespace or any(c in self.namespace for c in ":{}*?[]"):
            raise ClusterError("bad_namespace", f"a namespace has no ':', braces or glob characters: "
                               f"{self.namespace!r:.40}")

    def case_key(self, case_id: str, part: str) -> str:
        return f"{self.namespace}:{{{check_case_id(case_id)}}}:{part}"

    def lease(self, case_id: str) -> str:
        return self.case_key(case_id, "lease")

    def fence(self, case_id: str) -> str:
        return self.case_key(case_id, "fence")

    def journal(self, case_id: str) -> str:
        return self.case_key(case_id, "journal")

    @property
    def engines(self) -> str:
        return f"{self.namespace}:{ENGINES}"

    @property
    def feed(self) -> str:
        return f"{self.namespace}:{FEED}"

    def case_feed(self, case_id: str) -> str:
        """The pub/sub channel of one case's durable records (a channel, not a key)."""
        return f"{self.namespace}:{FEED}:{{{check_case_id(case_id)}}}"

    @property
    def feeds(self) -> str:
        """The pattern of every case's feed channel."""
        return f"{self.namespace}:{FEED}:*"

    def inbox(self, engine: str) -> str:
        return f"{self.namespace}:inbox:{check_process_id(engine)}"

    def replies(self, gateway: str) -> str:
        return f"{self.namespace}:replies:{check_process_id(gateway)}"

    @property
    def probe(self) -> str:
        """The pub/sub channel of the health probe: a channel, never a key, so SCAN never
        meets it."""
        return f"{self.namespace}:{PROBE}"

    @property
    def pattern(self) -> str:
        """The SCAN pattern of every key of the namespace."""
        return f"{self.namespace}:*"

    def parse(self, key: str) -> tuple[str, str] | None:
        """(case id, part) of a case's key, ("", "engines") for the registry, None for a key
        that is not ours (a foreign key in the namespace)."""
        if key == self.engines:
            return "", ENGINES
        prefix = f"{self.namespace}:{{"
        if not key.startswith(prefix):
            return None
        case_id, sep, part = key[len(prefix):].rpartition("}:")
        if not sep or part not in CASE_PARTS:
            return None
        try:
            check_case_id(case_id)
        except ClusterError:
            return None
        return case_id, part
