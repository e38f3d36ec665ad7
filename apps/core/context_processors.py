"""Values every page's layout shows."""

import platform
from typing import Any

import channels
import django
from django.conf import settings
from django.http import HttpRequest


def showcase(request: HttpRequest) -> dict[str, Any]:
    """Versions for the footer and the subprotocol the console offers."""
    return {
        "django_version": django.get_version(),
        "channels_version": channels.__version__,
        "python_version": platform.python_version(),
        "subprotocol": settings.WS_SUBPROTOCOL,
    }
