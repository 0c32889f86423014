"""What `create_app` wires for the audit log: the recorder (and webhook) in the lifespan, and routes."""

from __future__ import annotations

from contextlib import AsyncExitStack

from starlette.routing import BaseRoute

from authgate.audit.events import AuditSink
from authgate.audit.notifications import notification_routes
from authgate.audit.recorder import AuditRecorder
from authgate.audit.webhook import WebhookSender
from authgate.db.session import Database
from authgate.settings import Settings


async def open_audit(settings: Settings, db: Database, stack: AsyncExitStack) -> AuditRecorder:
    """Start the recorder (replaying any spill file) and the webhook; both stop with `stack`,
    the recorder first flushing its queue."""
    recorder = AuditRecorder(db, settings.data)
    if settings.webhook_url:
        webhook = WebhookSender(settings.webhook_url, settings.webhook_secret)
        webhook.start()
        stack.push_async_callback(webhook.stop)
        recorder.listeners.append(webhook)
    await recorder.start()
    stack.push_async_callback(recorder.stop)
    return recorder


def audit_routes(settings: Settings, audit: AuditSink) -> list[BaseRoute]:
    """The audit routes that need no login: registry notifications (the admin API is `admin_api`)."""
    return notification_routes(settings, audit)
