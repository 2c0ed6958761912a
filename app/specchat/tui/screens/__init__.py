"""specchat's screens."""

from specchat.tui.screens.confirm import ConfirmScreen
from specchat.tui.screens.main import MainScreen
from specchat.tui.screens.pair_picker import PairPickerScreen
from specchat.tui.screens.settings import ChatSettingsScreen
from specchat.tui.screens.summary import SummaryScreen
from specchat.tui.screens.text_prompt import TextPromptScreen

__all__ = [
    "ChatSettingsScreen",
    "ConfirmScreen",
    "MainScreen",
    "PairPickerScreen",
    "SummaryScreen",
    "TextPromptScreen",
]
