"""llama.cpp's OpenAI-compatible HTTP server (xllamacpp) in a process of its own.

    python -m tests.llm_server

Prints its base URL, then serves until it is stopped: the external-LLM setup, with the same
model the service would embed.
"""

from __future__ import annotations

import time

from service import Settings
from service.llm import EmbeddedServer, assemble_model

if __name__ == "__main__":
    settings = Settings()
    server = EmbeddedServer(assemble_model(settings.model_cache_dir), threads=settings.llm_threads)
    print(server.start(), flush=True)
    while True:
        time.sleep(3600)
