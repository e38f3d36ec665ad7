"""Fixtures shared by the jobs app's tests."""

from collections.abc import AsyncIterator

import pytest
from channels.layers import get_channel_layer

from apps.jobs import worker
from apps.jobs.queue import close_job_queue


@pytest.fixture
async def clean_jobs() -> AsyncIterator[None]:
    """After the test: the in-process worker stopped, the channel layer and job queue emptied."""
    yield
    await worker.stop_in_process_worker()
    await get_channel_layer().flush()
    await close_job_queue()
