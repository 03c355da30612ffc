# syntax=docker/dockerfile:1
# HalfMsgBroker broker image.
#   docker build -t halfmsgbroker .
#   docker run -p 8080:8080 -v halfmsg-data:/data -e Broker__Signing__Secret=s3cret halfmsgbroker
# Configuration: any Broker:* key as a Broker__* environment variable
# (e.g. Broker__Transactions__CheckAfter=00:00:06, Broker__Delivery__RetryBackoff__0=00:00:01).

ARG DOTNET_VERSION=10.0

# ---- build ---------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS build
WORKDIR /src

# Restore layer: only what restore reads, so source edits do not invalidate the package cache.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY broker/HalfMsgBroker.Broker.csproj broker/
RUN dotnet restore broker/HalfMsgBroker.Broker.csproj

COPY broker/ broker/
RUN dotnet publish broker/HalfMsgBroker.Broker.csproj \
      --configuration Release --no-restore \
      --output /app -p:UseAppHost=false

# ---- runtime -------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION} AS runtime
WORKDIR /app

# The LiteDB file and the journal live in /data; create it owned by the image's non-root user
# ($APP_UID, "app", provided by the .NET base images) before declaring the volume.
RUN mkdir -p /data && chown "$APP_UID" /data

COPY --from=build /app ./

# HTTP/1.1 on 8080 and HTTP/2 without TLS (h2c, prior knowledge) on 8081: Kestrel cannot offer both on
# one cleartext port, and under load h2c costs the broker far less CPU per call (README, "HTTP/2").
ENV Kestrel__Endpoints__Http__Url=http://+:8080 \
    Kestrel__Endpoints__H2c__Url=http://+:8081 \
    Kestrel__Endpoints__H2c__Protocols=Http2 \
    Broker__DataPath=/data \
    DOTNET_NOLOGO=1

USER $APP_UID
VOLUME ["/data"]
EXPOSE 8080 8081

# The runtime image ships neither curl nor wget; bash's /dev/tcp is enough for one GET.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health/ready HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["dotnet", "HalfMsgBroker.Broker.dll"]
