from apps.core.views import ConsumerStyleView

from . import consumers, routing

index = ConsumerStyleView.as_view(
    template_name="echo_async/index.html", routing=routing, consumers=consumers
)
