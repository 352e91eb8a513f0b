#!/usr/bin/env bash
# The consumer test: pack the libraries and the shm tool into a local folder feed, and use them as a
# stranger would, from projects outside the solution (by package, not by project reference):
#   - the README's quick starts, F# and C#: the README's project files (fsharp/, csharp/, compared
#     with the README by ReadmeTests) and the samples' Program files, unchanged, restored through a
#     nuget.config made the way the README says, built with warnings as errors, run, output checked;
#   - Consumer.fsproj, on the lowest FSharp.Core Shm.Fun asks for: fork configured by the package's
#     switch, refused without it; shm { } and named regions;
#   - a net8.0 app: restore fails with NuGet's NU1202 (the package is for net10.0);
#   - a C peer compiled against the shm.h the package ships ($(ShmIncludeDirectory));
#   - the packed tool, installed with dotnet tool install.
# Ends with "consumer: N passed, N failed".
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/tests/consumer"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The version the README's project files name; a cache of our own, so no earlier run's package is used.
version="$(sed -nE 's|.*<Version>(.*)</Version>.*|\1|p' "$root/Directory.Build.props" | head -1)"
fsharp_core="$(sed -nE 's|.*Include="FSharp.Core" VersionOverride="([^"]*)".*|\1|p' "$root/src/Shm.Fun/Shm.Fun.fsproj")"
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

# The README's quick starts, as a newcomer makes them: a folder, the project file, the program,
# and a nuget.config that adds the local feed.
quick_start() {
    local language=$1 project=$2 program=$3 expected=$4
    local app="$work/$language"
    mkdir -p "$app"
    cp "$here/$language/$project" "$root/samples/$program" "$app/"
    (cd "$app" && dotnet new nugetconfig > /dev/null && dotnet nuget add source "$feed" --name shm-local --configfile nuget.config > /dev/null) \
        || { fail "quick start ($language): nuget.config"; return; }
    if ! (cd "$app" && dotnet build -c Release -o out --nologo -v quiet > "$work/build-$language.log" 2>&1); then
        cat "$work/build-$language.log"; fail "quick start ($language): build with warnings as errors"; return
    fi
    local output
    output="$(cd "$app" && dotnet "out/${project%.*}.dll" 2>&1)"
    if [[ "$output" == "$expected" ]]; then pass "quick start ($language): built from the feed, prints $expected"; else echo "$output"; fail "quick start ($language): printed something else"; fi
}
quick_start fsharp QuickStart.fsproj QuickStart.FSharp/Program.fs "5102"
quick_start csharp QuickStart.csproj QuickStart.CSharp/Program.cs "6 1 2"

for fork in true false; do
    out="$work/consumer-$fork"
    if dotnet build "$here/Consumer.fsproj" -c Release -o "$out" --nologo -v quiet \
        -p:ShmVersion="$version" -p:FSharpCoreVersion="$fsharp_core" -p:ShmEnableFork="$fork" -p:RestoreSources="$sources" \
        -p:BaseIntermediateOutputPath="$work/obj-$fork/" > "$work/build-$fork.log" 2>&1; then
        arguments=(); [[ $fork == true ]] && arguments=(--fork-enabled)
        if grep -q "\"FSharp.Core/$fsharp_core\"" "$work/obj-$fork/project.assets.json" && dotnet "$out/Consumer.dll" "${arguments[@]}"; then
            pass "package consumer on FSharp.Core $fsharp_core, ShmEnableFork=$fork"
        else
            fail "package consumer on FSharp.Core $fsharp_core, ShmEnableFork=$fork"
        fi
    else
        cat "$work/build-$fork.log"; fail "build the consumer with ShmEnableFork=$fork"
    fi
done

if dotnet restore "$here/net8/Net8.csproj" --nologo -p:ShmVersion="$version" -p:RestoreSources="$sources" \
    -p:BaseIntermediateOutputPath="$work/obj-net8/" > "$work/net8.log" 2>&1; then
    cat "$work/net8.log"; fail "a net8.0 app restored Shm.Interop (it must get NU1202)"
elif grep -q "NU1202" "$work/net8.log"; then
    pass "a net8.0 app gets NU1202 from NuGet"
else
    cat "$work/net8.log"; fail "a net8.0 app failed to restore, but not with NU1202"
fi

include="$(cd "$work/csharp" 2>/dev/null && dotnet msbuild QuickStart.csproj -getProperty:ShmIncludeDirectory 2>/dev/null)"
if [[ -n "$include" && -f "$include/shm/shm.h" ]] && cc -std=gnu11 -Wall -Werror -I"$include" "$here/peer.c" -o "$work/peer" && "$work/peer"; then
    pass "shm.h ships in the package; a C peer compiles with -I\$(ShmIncludeDirectory)"
else
    fail "shm.h in the package (ShmIncludeDirectory='$include')"
fi

if dotnet tool install Shm.Tool --version "$version" --tool-path "$work/tool" --add-source "$feed" > "$work/tool.log" 2>&1 \
    && "$work/tool/shm" ls --json | python3 -c 'import json, sys; assert isinstance(json.load(sys.stdin), list)'; then
    pass "dotnet tool install of the packed shm tool; shm ls --json"
else
    cat "$work/tool.log"; fail "dotnet tool install of the packed shm tool"
fi

echo "consumer: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
