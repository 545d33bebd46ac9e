"""Reusable widgets of the main window: the dial pad and the active-call panel."""
