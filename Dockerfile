# citeqa: cited question answering over the bundled article, with the embedded LLM.
# Build:  docker build -t citeqa .
# Run:    docker run -p 8000:8000 citeqa
FROM python:3.11-slim

# libgomp1: OpenMP runtime that the llama.cpp wheel (xllamacpp) links against.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 citeqa
WORKDIR /app
COPY --chown=citeqa:citeqa pyproject.toml README.md ./
COPY --chown=citeqa:citeqa scripts ./scripts
COPY --chown=citeqa:citeqa service ./service
COPY --chown=citeqa:citeqa index ./index
COPY --chown=citeqa:citeqa prompts ./prompts
COPY --chown=citeqa:citeqa corpus ./corpus
USER 1000:1000

# The same setup CI runs; the CPU build of torch comes from PyTorch's own index.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV CITEQA_INDEX_DIR=/app/var/index \
    CITEQA_MODEL_CACHE_DIR=/home/citeqa/.cache/citeqa \
    CITEQA_HOST=0.0.0.0 \
    CITEQA_PORT=8000 \
    HF_HUB_OFFLINE=1 \
    PATH=/app/.venv/bin:$PATH
RUN scripts/setup && citeqa prepare

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"]
CMD ["citeqa", "serve"]
