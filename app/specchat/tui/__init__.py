"""The Textual chat app. Knows the engine only through specchat.engine's public API."""

from specchat.tui.app import SpecchatApp

__all__ = ["SpecchatApp"]
