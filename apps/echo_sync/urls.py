from django.urls import path

from . import views

app_name = "echo_sync"
urlpatterns = [
    path("", views.index, name="index"),
]
