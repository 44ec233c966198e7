"""Serve the app over the hashing embedder and a silent upstream, for crash tests.

python -m tests.fake_server INDEX_DIR PORT ADMIN_KEY
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from pydantic import SecretStr

from service import Settings
from tests.conftest import ARTICLE, HashingEmbedder, QueuedUpstream, fake_app

if __name__ == "__main__":
    index_dir, port, key = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    settings = Settings(corpus=[ARTICLE], index_dir=index_dir, admin_keys=SecretStr(key))
    app = fake_app(settings, HashingEmbedder(), QueuedUpstream())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
