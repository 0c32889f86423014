# authgate: the front door of a private container registry, on port 5000 like the `registry` image.
#
#   docker build -t authgate .
#   docker volume create authgate-data
#   docker run -d --name authgate -p 5000:5000 -v authgate-data:/data authgate
#
# BASE must be a Debian-like image with python3 >= 3.11 and its venv module (python:3.11-slim, or
# Debian bookworm with python3-venv); the build stage and the final stage use the same one, so the
# virtualenv's interpreter path is valid in both. Without a registry: docs/container.md says how to
# make one locally (debootstrap + docker import) or bring one (docker save / docker load).
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
WORKDIR /src
RUN python3 -m venv /opt/authgate
# Dependencies first, so editing the code does not re-download them: the pinned docker/requirements.txt,
# from docker/wheels/ when it holds wheels (an offline build), else from PyPI.
COPY docker/requirements.txt ./requirements.txt
COPY docker/wheels/ /wheels/
RUN if ls /wheels/*.whl >/dev/null 2>&1; then from_wheels="--no-index --find-links /wheels"; else from_wheels=""; fi \
 && /opt/authgate/bin/pip install --no-cache-dir --disable-pip-version-check $from_wheels -r requirements.txt
COPY pyproject.toml README.md ./
COPY authgate ./authgate
COPY migrations ./migrations
# The wheel carries the migrations as authgate.migrations; built with the pinned setuptools above (no
# build isolation: nothing to download). pip and setuptools are not needed to run: dropped from the image.
RUN /opt/authgate/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation . \
 && /opt/authgate/bin/python -m pip uninstall -y -q pip setuptools

FROM ${BASE}
# A fixed uid, so a host directory can be prepared for it: `chown 10001 DIR` before `-v DIR:/data`.
RUN groupadd --system --gid 10001 authgate \
 && useradd --system --uid 10001 --gid authgate --home-dir /data --no-create-home --shell /usr/sbin/nologin authgate \
 && mkdir -p /data && chown authgate:authgate /data && chmod 0700 /data
COPY --from=build /opt/authgate /opt/authgate
COPY docker/healthcheck.py /opt/authgate/healthcheck.py
ENV PATH=/opt/authgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AUTHGATE_DATA=/data \
    AUTHGATE_HOST=0.0.0.0 \
    AUTHGATE_PORT=5000
VOLUME /data
EXPOSE 5000
USER authgate:authgate
WORKDIR /data
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/opt/authgate/bin/python", "/opt/authgate/healthcheck.py"]
ENTRYPOINT ["authgate"]
CMD ["serve"]
