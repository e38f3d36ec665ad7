from django.urls import path

from . import views

app_name = "core"
urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("journal/<str:journal_id>/", views.journal_feed, name="journal"),
    path("stats/", views.stats_feed, name="stats"),
]
