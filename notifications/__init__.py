"""Notifications: templates (Lao + English), rendering, MIME composition, the outbox, transports, signed links.

May import models/ and calendars/ only (never flows/ or roundtable/).
"""
