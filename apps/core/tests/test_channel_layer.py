"""The channel layer as settings.py configures it with REDIS_URL."""

import json
import os
import subprocess
import sys

from django.conf import settings

PROBE = """
import json, django
django.setup()
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from channels_redis.utils import create_pool
layer = get_channel_layer()
pool = create_pool(layer.hosts[0])
print(json.dumps({"socket_timeout": pool.connection_kwargs.get("socket_timeout"),
                  "brpop_timeout": RedisChannelLayer.brpop_timeout}))
"""


def test_blocking_reads_outlast_the_layers_wait_for_messages() -> None:
    # A socket timeout at or under BZPOPMIN's wait turned an empty wait into a TimeoutError
    # that killed receive loops and runworker on a busy machine (settings.py says more).
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:6399/0", "CHANNEL_LAYER": "core"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    done = subprocess.run(  # noqa: S603 - our own interpreter on a fixed probe
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["socket_timeout"] >= found["brpop_timeout"] + 5, found
