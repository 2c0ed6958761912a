"""specchat's widgets."""

from specchat.tui.widgets.chat_view import ChatView
from specchat.tui.widgets.message import MessageBox
from specchat.tui.widgets.prompt import PromptInput
from specchat.tui.widgets.sidebar import ChatList, Sidebar
from specchat.tui.widgets.status_bar import StatusBar

__all__ = ["ChatList", "ChatView", "MessageBox", "PromptInput", "Sidebar", "StatusBar"]
