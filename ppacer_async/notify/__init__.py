"""Notifiers: where alerts about failed and retried tasks go.

``LogNotifier`` writes to a logger; ``EmailNotifier`` sends mail over SMTP and
``WebhookNotifier`` posts JSON (generic, Slack or Discord). Both network notifiers run
the blocking standard-library client in a worker thread, retry transient failures a
bounded number of times and then raise ``NotifierError``, which the scheduler logs.
"""

from __future__ import annotations

from ._shared import DEFAULT_TEMPLATE as DEFAULT_TEMPLATE
from ._shared import TEMPLATE_FIELDS as TEMPLATE_FIELDS
from ._shared import NotifierError as NotifierError
from .email import DEFAULT_EMAIL_BODY as DEFAULT_EMAIL_BODY
from .email import DEFAULT_EMAIL_SUBJECT as DEFAULT_EMAIL_SUBJECT
from .email import EmailNotifier as EmailNotifier
from .email import SMTPSecurity as SMTPSecurity
from .log import LogNotifier as LogNotifier
from .webhook import DISCORD_CONTENT_LIMIT as DISCORD_CONTENT_LIMIT
from .webhook import WebhookFormat as WebhookFormat
from .webhook import WebhookNotifier as WebhookNotifier

__all__ = [
    "DEFAULT_EMAIL_BODY",
    "DEFAULT_EMAIL_SUBJECT",
    "DEFAULT_TEMPLATE",
    "DISCORD_CONTENT_LIMIT",
    "TEMPLATE_FIELDS",
    "EmailNotifier",
    "LogNotifier",
    "NotifierError",
    "SMTPSecurity",
    "WebhookFormat",
    "WebhookNotifier",
]
