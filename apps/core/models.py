"""
The one model of the showcase: a short note that both echo apps save and read, each in its
own consumer style (the sync ORM, the async ORM, `database_sync_to_async`).

It lives in apps/core because no app imports another. Notes are public: anyone on /sync/ or
/async/ reads the latest ones, with the author's username when the writer was logged in.
"""

from typing import Any

from django.conf import settings
from django.db import models

MAX_NOTE_CHARS = 200


class Note(models.Model):
    """A short text, who wrote it (if logged in) and when."""

    text = models.CharField(max_length=MAX_NOTE_CHARS)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notes",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created", "-id")
        indexes = (models.Index(fields=["-created", "-id"], name="note_latest"),)

    def __str__(self) -> str:
        return self.text

    def as_dict(self) -> dict[str, Any]:
        """The note as the JSON endpoints send it (the author must be loaded already)."""
        return {
            "id": self.id,
            "text": self.text,
            "author": self.author.get_username() if self.author_id else None,
            "created": self.created.isoformat(),
        }
