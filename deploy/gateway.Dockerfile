# thinkserve's gateway image (deploy/compose.yaml). llama.cpp is built portably, as `make install`
# does, so that the image runs on any x86-64 CPU; the model itself runs in vLLM.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DCMAKE_INSTALL_BINDIR=llama_cpp/lib -DLLAVA_BUILD=OFF"
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/thinkserve thinkserve \
    && mkdir -p /var/lib/thinkserve && chown thinkserve /var/lib/thinkserve
USER thinkserve
EXPOSE 8000
CMD ["thinkserve", "serve", "--host", "0.0.0.0"]
