#!/bin/sh
echo "bazel coverage is not supported here; use: go test -cover ./..." >&2
exit 1
