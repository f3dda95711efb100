"""Tracking gateway: settings, app factory, auth, embedded MongoDB lifecycle and the CLI."""
