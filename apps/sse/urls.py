from django.urls import path

from . import views

app_name = "sse"
urlpatterns = [
    path("", views.index, name="index"),
    path("lobby/say/", views.say, name="say"),
]
