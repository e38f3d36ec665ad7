from django.conf import settings

from apps.core.views import ConsumerStyleView

from . import consumers, routing

index = ConsumerStyleView.as_view(
    template_name="jobs/index.html",
    routing=routing,
    consumers=consumers,
    extra_context={
        "max_n": settings.JOBS_MAX_N,
        "per_socket": settings.JOBS_PER_SOCKET,
        "queue_limit": settings.JOBS_QUEUE_LIMIT,
    },
)
