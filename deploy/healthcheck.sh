#!/bin/bash
# Container health probe: `ids-healthcheck [PATH]` (default /readyz) -> exit 0 on HTTP 200.
#
# Why bash and /dev/tcp instead of curl or wget: debian:bookworm-slim ships bash but
# neither curl nor wget, and installing curl would pull libcurl and a dozen libraries
# (more CVEs to patch) into an image whose only job is to run one binary. The probe
# needs exactly one HTTP/1.0 GET on loopback, which bash can do by itself.
#
# The port follows IDS_HTTP_ADDR (the binaries' `http_addr`, default 0.0.0.0:8080),
# so a changed port does not break the healthcheck.
set -u
path="${1:-/readyz}"
addr="${IDS_HTTP_ADDR:-0.0.0.0:8080}"
port="${addr##*:}"
exec 3<>"/dev/tcp/127.0.0.1/${port}" || exit 1
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
IFS=' ' read -r -t 5 _proto status _rest <&3 || exit 1
exec 3<&-
[ "$status" = "200" ]
