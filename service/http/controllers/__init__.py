"""One controller per area of the API; each gets the runtime and settings injected."""

from service.http.controllers.answers import AnswersController
from service.http.controllers.chat import OpenAIController
from service.http.controllers.documents import DocumentsController
from service.http.controllers.health import HealthController, Metrics, playground

__all__ = [
    "AnswersController",
    "DocumentsController",
    "HealthController",
    "Metrics",
    "OpenAIController",
    "playground",
]
