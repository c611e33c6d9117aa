#!/bin/sh
# Shrink the image's virtual environment: drop what no service loads, strip symbols.
#
# Usage: slim-venv.sh VENV
#
# Run by the Dockerfile's builder stage, then deploy/docker/smoke.py proves the
# result: every service imports and builds its app, the AWS clients it needs
# load, and JSONL/CSV/Parquet exports are written. tests/deploy/test_image.py
# runs both on an environment built here the same way. What goes:
#
#   pyarrow   its unit tests, C++ headers and Cython sources; Arrow Flight and the
#             S3/HDFS file systems (the generator reaches S3 through boto3, and
#             pyarrow.fs tolerates their absence); two copies of libarrow_python
#             that the wheel carries instead of symlinks.
#   botocore  the API models of every AWS service but those in BOTOCORE_SERVICES
#             (S3, Bedrock's control plane for batch jobs, Bedrock runtime, and
#             STS, which IRSA's web identity uses).
#             A new AWS client in the code needs its service added here.
#             Also its ORC, GCS and Azure modules and its C++ test module.
#   faker     every locale but en, en_US and en_GB (its default and what that falls
#             back on). faker comes with litestar's polyfactory, which no service
#             imports; Faker() still works whole.
#   faststream  the Kafka, Confluent, NATS, Redis and MQTT brokers (RabbitMQ only).
#   pygments  every lexer but Python's and JSON/YAML's (4 MB of 600 languages):
#             rich, which the services load, highlights Python in tracebacks. Asking
#             it to highlight another language fails (no lexer module); no service does.
#   *.pyi     type stubs (read by type checkers, never at run time).
#   *.so      debug symbols (strip --strip-unneeded; binutils is in the builder only).
set -eu

venv="$1"
BOTOCORE_SERVICES="${BOTOCORE_SERVICES:-s3 bedrock bedrock-runtime sts}"

site=$(echo "$venv"/lib/python3.*/site-packages)
[ -d "$site" ] || { echo "slim-venv: no site-packages under $venv" >&2; exit 1; }

pa="$site/pyarrow"
if [ -d "$pa" ]; then
    rm -rf "$pa/tests" "$pa/include" "$pa/src"
    rm -f "$pa"/*.pyx "$pa"/*.pxd "$pa"/*.pxi "$pa"/includes/*.pxd
    rm -f "$pa"/libarrow_flight.so* "$pa"/libarrow_python_flight.so* "$pa"/_flight.*.so
    rm -f "$pa"/libarrow_s3.so* "$pa"/_s3fs.*.so "$pa"/_hdfs.*.so
    rm -f "$pa"/_gcsfs.*.so "$pa"/_azurefs.*.so "$pa"/_orc.*.so "$pa"/_dataset_orc.*.so
    rm -f "$pa"/_pyarrow_cpp_tests.*.so "$pa"/orc.py
    # The loader asks for libarrow_python.so.<abi>; the other two names become links to it.
    for lib in "$pa"/libarrow_python.so.*; do
        case "$lib" in *.so.*.*) continue ;; esac
        for alias in "$pa/libarrow_python.so" "$pa"/libarrow_python.so.*.*; do
            if [ -f "$alias" ] && [ ! -L "$alias" ]; then
                ln -sf "$(basename "$lib")" "$alias"
            fi
        done
    done
fi

if [ -d "$site/faker/providers" ]; then
    for dir in "$site"/faker/providers/*/*/; do
        case $(basename "$dir") in
            en|en_US|en_GB|__pycache__) ;;
            *) rm -rf "$dir" ;;
        esac
    done
fi

for broker in kafka confluent nats redis mqtt; do
    rm -rf "$site/faststream/$broker"
done

lexers="$site/pygments/lexers"
if [ -d "$lexers" ]; then
    for file in "$lexers"/*.py; do
        case $(basename "$file") in
            __init__.py|_mapping.py|python.py|data.py) ;;
            *) rm -f "$file" ;;
        esac
    done
fi

find "$site" -name '*.pyi' -type f -delete

data="$site/botocore/data"
if [ -d "$data" ]; then
    for dir in "$data"/*/; do
        name=$(basename "$dir")
        case " $BOTOCORE_SERVICES " in
            *" $name "*) ;;
            *) rm -rf "$dir" ;;
        esac
    done
fi

# Strip a copy and move it over the original: a new file, so a library hard-linked
# elsewhere (uv links from its cache) is never rewritten in place.
if command -v strip >/dev/null 2>&1; then
    find "$site" -name '*.so*' -type f | while IFS= read -r lib; do
        cp -p "$lib" "$lib.slim"
        strip --strip-unneeded "$lib.slim"
        mv -f "$lib.slim" "$lib"
    done
fi
