"""DeskPBX: the PBX and its SIP/RTP library. Nothing in this package imports Qt."""

__version__ = "0.1.0"
