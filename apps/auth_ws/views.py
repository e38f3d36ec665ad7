"""The /auth/ page, and sign-up (logging in and out are Django's own views)."""

from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import RedirectURLMixin
from django.http import HttpRequest, HttpResponse
from django.views.generic import FormView

from apps.core import throttle
from apps.core.views import ConsumerStyleView

from . import consumers, routing
from .demo import DEMO_ACCOUNTS

index = ConsumerStyleView.as_view(
    template_name="auth_ws/index.html",
    routing=routing,
    consumers=consumers,
    extra_context={"presence_ttl": settings.PRESENCE_TTL},
)


class SignupView(RedirectURLMixin, FormView):
    """Create an account with Django's UserCreationForm, log it in, and go on to `next`."""

    template_name = "registration/signup.html"
    form_class = UserCreationForm
    next_page = settings.LOGIN_REDIRECT_URL

    def form_valid(self, form: UserCreationForm) -> HttpResponse:
        """Save the user and start their session, unless this address made too many lately."""
        where = throttle.of_address(client_address(self.request))
        if not async_to_sync(throttle.allow)("signups_per_address", where):
            form.add_error(
                None,
                "Too many new accounts from your address lately: please try again in an hour.",
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        # A new account has no failed logins to count: straight to the model backend.
        login(self.request, form.save(), backend="django.contrib.auth.backends.ModelBackend")
        return super().form_valid(form)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """Carry a safe `next` through the form, like the login page does."""
        context = super().get_context_data(**kwargs)
        context[self.redirect_field_name] = self.get_redirect_url()
        return context


class LoginView(auth_views.LoginView):
    """Django's login view; in DEBUG the page also lists the demo accounts."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """Add the demo accounts, in DEBUG only."""
        context = super().get_context_data(**kwargs)
        context["demo_accounts"] = DEMO_ACCOUNTS if settings.DEBUG else ()
        return context


def client_address(request: HttpRequest) -> str | None:
    """
    The client's address for limits (django-axes' AXES_CLIENT_IP_CALLABLE, sign-ups): the
    server's REMOTE_ADDR, which behind nginx is the browser's (daphne --proxy-headers), and
    never a header such as X-Forwarded-For that a client could send itself to `make run`.
    """
    return request.META.get("REMOTE_ADDR") or None
