"""GC_THRESHOLD: every process that sets Django up runs its garbage collector with it."""

import gc

from django.apps import apps


def test_the_process_runs_with_the_setting(settings) -> None:
    assert gc.get_threshold() == settings.GC_THRESHOLD


def test_the_app_applies_the_setting(settings) -> None:
    before = gc.get_threshold()
    settings.GC_THRESHOLD = (1234, 5, 6)
    try:
        apps.get_app_config("core").ready()
        assert gc.get_threshold() == (1234, 5, 6)
    finally:
        gc.set_threshold(*before)


def test_an_empty_setting_keeps_pythons_thresholds(settings) -> None:
    before = gc.get_threshold()
    settings.GC_THRESHOLD = ()
    apps.get_app_config("core").ready()
    assert gc.get_threshold() == before
