from django.urls import path

from . import views

app_name = "echo_async"
urlpatterns = [
    path("", views.index, name="index"),
]
