"""Dialogs: the incoming call, and the settings pages (account, audio, extensions, trunks)."""
