from django.urls import path

from . import views

app_name = "auth_ws"
urlpatterns = [
    path("", views.index, name="index"),
]
