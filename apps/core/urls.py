from django.urls import path, re_path

from . import docs, views

app_name = "core"
urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("journal/<str:journal_id>/", views.journal_feed, name="journal"),
    path("stats/", views.stats_feed, name="stats"),
    path("docs/", views.doc_page, name="docs"),
    re_path(rf"^docs/(?P<name>{docs.PAGE_NAME.pattern})/$", views.doc_page, name="doc"),
    re_path(rf"^docs/(?P<path>{docs.FILE_NAME.pattern})$", views.doc_file, name="doc_file"),
]
