#!/usr/bin/env bash
# The consumer test: pack the libraries and the shm tool into a local folder feed, restore them in a
# project outside the solution (as a stranger would: by package, not by project reference), and
# check that fork is configured by the package's switch, refused without it, and that shm { }, named
# regions and the installed tool work. Ends with "consumer: N passed, N failed".
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A version no earlier run used, so no NuGet cache can serve a stale package; and a cache of our own.
version="0.1.0-ci.$(date +%s)"
export NUGET_PACKAGES="$work/packages"
feed="$work/feed"
sources="$feed;https://api.nuget.org/v3/index.json"
passed=0 failed=0
pass() { echo "consumer: ok   $1"; passed=$((passed + 1)); }
fail() { echo "consumer: FAIL $1"; failed=$((failed + 1)); }

for project in src/Shm.Interop/Shm.Interop.csproj src/Shm.Fun/Shm.Fun.fsproj src/Shm.Tool/Shm.Tool.csproj; do
    dotnet pack "$root/$project" -c Release -o "$feed" --nologo -v quiet \
        -p:Version="$version" -p:ContinuousIntegrationBuild=true > "$work/pack.log" 2>&1 \
        || { cat "$work/pack.log"; fail "dotnet pack $project"; }
done

for fork in true false; do
    out="$work/consumer-$fork"
    if dotnet build "$root/tests/consumer/Consumer.fsproj" -c Release -o "$out" --nologo -v quiet \
        -p:ShmVersion="$version" -p:ShmEnableFork="$fork" -p:RestoreSources="$sources" \
        -p:BaseIntermediateOutputPath="$work/obj-$fork/" > "$work/build-$fork.log" 2>&1; then
        arguments=(); [[ $fork == true ]] && arguments=(--fork-enabled)
        if dotnet "$out/Consumer.dll" "${arguments[@]}"; then pass "package consumer, ShmEnableFork=$fork"; else fail "package consumer, ShmEnableFork=$fork"; fi
    else
        cat "$work/build-$fork.log"; fail "build the consumer with ShmEnableFork=$fork"
    fi
done

if dotnet tool install Shm.Tool --version "$version" --tool-path "$work/tool" --add-source "$feed" > "$work/tool.log" 2>&1 \
    && "$work/tool/shm" ls --json | python3 -c 'import json, sys; assert isinstance(json.load(sys.stdin), list)'; then
    pass "dotnet tool install of the packed shm tool; shm ls --json"
else
    cat "$work/tool.log"; fail "dotnet tool install of the packed shm tool"
fi

echo "consumer: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
