# Lookalike web app (gunicorn) and trainer.
#
#   docker build -t lookalike .                      CPU torch (default)
#   docker build -t lookalike:cuda --build-arg TORCH_INDEX=https://pypi.org/simple .
#                                                    CUDA torch (PyPI's Linux wheels)
#
# torch and torchvision come from TORCH_INDEX first, at the versions pinned in
# requirements.txt; the rest of requirements.txt then finds them installed.
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# 1: also Ray and pymilvus' bulk writer (requirements-ray.txt), for the compose
# stack's `ray` profile and `--ray` (docs/scale.md).
ARG WITH_RAY=0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/srv/lookalike/hf-cache \
    GUNICORN_BIND=0.0.0.0:8000

WORKDIR /srv/lookalike

COPY requirements.txt requirements-backends.txt requirements-ray.txt ./
RUN TORCH="$(grep -E '^(torch|torchvision)==' requirements.txt)" \
    && pip install --index-url "$TORCH_INDEX" $TORCH \
    && pip install -r requirements.txt -r requirements-backends.txt \
    && if [ "$WITH_RAY" = 1 ]; then pip install -r requirements-ray.txt; fi

RUN useradd --system --create-home --home-dir /home/lookalike lookalike \
    && mkdir -p instance hf-cache runs \
    && chown lookalike:lookalike instance hf-cache runs
COPY --chown=root:root . .

USER lookalike
EXPOSE 8000
# Ready once a worker has loaded the model and reached Milvus and the image store.
HEALTHCHECK --interval=30s --timeout=10s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/api/health', timeout=5)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
