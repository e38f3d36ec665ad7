"""URL configuration: each app brings its own urls module."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("apps.core.urls")),
    path("sync/", include("apps.echo_sync.urls")),
    path("async/", include("apps.echo_async.urls")),
    path("auth/", include("apps.auth_ws.urls")),
    path("accounts/", include("apps.auth_ws.account_urls")),
    path("http/", include("apps.sse.urls")),
    path("worker/", include("apps.jobs.urls")),
    path("admin/", admin.site.urls),
]
