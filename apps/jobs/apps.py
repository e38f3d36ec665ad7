from django.apps import AppConfig


class JobsConfig(AppConfig):
    """A background worker: a `SyncConsumer` serving the channel "jobs", fed from a socket."""

    name = "apps.jobs"
    label = "jobs"
