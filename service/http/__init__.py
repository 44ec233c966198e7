"""The HTTP layer: the Litestar app, its controllers, guards, middleware, API docs and wire types.

Owns everything about requests and responses, the OpenAI wire shapes included. Nothing
below it (``service.answering``, ``service.llm``, ``index``, the top-level modules other
than ``cli`` and ``eval``) imports from here; ``lint-imports`` checks it.
"""

from service.http.access import KeysFileError
from service.http.app import Loader, create_app
from service.http.wire import ChatMessage, sources_block

__all__ = ["ChatMessage", "KeysFileError", "Loader", "create_app", "sources_block"]
