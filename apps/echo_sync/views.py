from apps.core.views import ConsumerStyleView

from . import consumers, routing

index = ConsumerStyleView.as_view(
    template_name="echo_sync/index.html", routing=routing, consumers=consumers
)
