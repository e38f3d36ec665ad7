"""
The channel layer with Redis: channels-redis's `RedisChannelLayer`, its pool bounded and waiting.

channels-redis (4.3) builds each host's pool with redis-py's plain `ConnectionPool`, which
raises `MaxConnectionsError` once its connections are all in use, and has no option to pick
another pool class. Every `group_add`, `group_discard` and `group_send` borrows a connection for
one command, so a thousand sockets leaving at once borrowed a thousand: past the hundredth the
leave failed, the channel stayed in its group until `group_expiry`, and the server logged a
traceback per socket. This subclass builds the same pool as a waiting one
(apps/core/redis_clients.py): the herd queues for `settings.REDIS_MAX_CONNECTIONS` connections.
Nothing else differs from the upstream layer.
"""

from typing import Any

from channels_redis.core import RedisChannelLayer as UpstreamRedisChannelLayer
from django.conf import settings
from redis.asyncio import ConnectionPool

from .redis_clients import bounded_pool


class RedisChannelLayer(UpstreamRedisChannelLayer):
    """channels-redis's layer, whose connections per process and host are bounded and waited for."""

    def __init__(
        self,
        *args: Any,
        max_connections: int | None = None,
        pool_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections or settings.REDIS_MAX_CONNECTIONS
        self.pool_timeout = settings.REDIS_POOL_TIMEOUT if pool_timeout is None else pool_timeout

    def create_pool(self, index: int) -> ConnectionPool:
        """The pool for host `index`: at most `max_connections`, a busy pool makes callers wait."""
        return bounded_pool(self.hosts[index], self.max_connections, self.pool_timeout)
