using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;

namespace Shm.Interop;

/// <summary>
/// Code the parent never runs, compiles or loads, so that every forked child does all three for the
/// first time before it reports started: the JIT (a method and a generic method instantiation), the
/// type loader (generic types over a new struct and over the core library's own types, an
/// interface), interface dispatch, a static constructor and a string literal. Each takes process-wide runtime locks. If another parent
/// thread held one at the instant of the fork, the child hangs here, before any user code, where
/// the parent sees it within milliseconds and forks again. Once taken here, nobody else can hold
/// them in the child: it has one thread.
/// </summary>
internal static class RuntimeLockProbe
{
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.NoOptimization)]
    public static int Run()
    {
        IProbe probe = new Box<Key>(new Key { Value = 1 });
        return probe.Touch("runtime lock probe") + Generic(new Key { Value = 2 }) + Box<Key>.Shared.Length + CoreLibrary();
    }

    // Generics made only of the core library's types belong to the core library's loader: its
    // type and method tables have their own locks, which threads that load types (reflection,
    // serializers, MakeGenericType) hold often. The parent never builds these instantiations.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.NoOptimization)]
    private static int CoreLibrary()
    {
        return new List<((sbyte, ushort), (uint, char))>().Count + Array.Empty<((sbyte, ushort), (uint, char))>().Length;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.NoOptimization)]
    private static int Generic<T>(T value)
        where T : struct => value.GetHashCode();

    private interface IProbe
    {
        int Touch(string text);
    }

    private sealed class Box<T>(T value) : IProbe
        where T : struct
    {
        public static readonly int[] Shared = new int[1];

        [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.NoOptimization)]
        public int Touch(string text) => text.Length + value.GetHashCode();
    }

    private struct Key
    {
        public int Value;
    }
}
