"""Accounts: Django's login and logout views, and a small sign-up view."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

# No namespace: settings.LOGIN_URL and Django's auth views expect these names.
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.SignupView.as_view(), name="signup"),
]
