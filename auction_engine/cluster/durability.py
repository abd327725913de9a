"""Can this Redis promise that an acknowledged append survives? Checked before the engine role runs.

An append is durable when Redis fsyncs its AOF before answering (``appendonly yes`` and
``appendfsync always``) or when `replicas` replicas confirm it (WAIT, see stream.py).
`check_durability` reads the server's configuration and refuses anything else with a
coded `ClusterError`, unless `unsafe` is given (tests, comparisons): then it says so.
"""

from __future__ import annotations

from coredis.exceptions import ResponseError

from .layout import ClusterError
from .lease import Client, _text

AOF_ALWAYS = "aof_always"
REPLICAS = "replicas"
UNSAFE = "unsafe"


async def check_durability(client: Client, *, replicas: int = 0, unsafe: bool = False) -> str:
    """`aof_always` or `replicas` (how appends are made durable), or `unsafe` when allowed;
    else `ClusterError`: `config_unreadable` (CONFIG GET refused, e.g. a managed Redis),
    `too_few_replicas` (fewer connected than asked), `not_durable`."""
    try:
        config = {_text(k): _text(v) for k, v in (await client.config_get(["appendonly", "appendfsync"])).items()}
    except ResponseError as exc:
        if unsafe:
            return UNSAFE
        raise ClusterError("config_unreadable", f"CONFIG GET is refused ({exc}): durability cannot be checked; "
                           "run with the unsafe flag only if you know it is durable") from None
    if config.get("appendonly") == "yes" and config.get("appendfsync") == "always":
        return AOF_ALWAYS
    if replicas > 0:
        online = await online_replicas(client)
        if online >= replicas:
            return REPLICAS
        if not unsafe:
            raise ClusterError("too_few_replicas", f"{online} replicas online, {replicas} required")
    if unsafe:
        return UNSAFE
    raise ClusterError("not_durable", f"appendonly={config.get('appendonly')!r}, appendfsync="
                       f"{config.get('appendfsync')!r}: an acknowledged append could be lost; set appendonly yes "
                       "and appendfsync always, or require replicas (WAIT), or pass the unsafe flag")


async def online_replicas(client: Client) -> int:
    """Replicas in sync with this server (INFO replication: ``slaveN`` with state online);
    one still loading its first copy would not acknowledge a WAIT."""
    info = await client.info("replication")
    return sum(1 for key, value in info.items()
               if _text(key).startswith("slave") and isinstance(value, dict) and _text(value.get("state")) == "online")
