using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Linq;
using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Shm.Interop;

/// <summary>
/// Compiles a fork body in the parent before the fork: the delegate's method and what it calls
/// directly, to a bounded depth, found by reading its IL (<c>call</c>, <c>callvirt</c>,
/// <c>newobj</c>, <c>ldftn</c>, with the generic instantiations the IL names; P/Invokes are bound).
/// Code compiled here
/// is not compiled in the child, so the child takes fewer of the runtime locks another parent
/// thread may have held at the fork. Done once per delegate method; best effort (virtual calls
/// resolve only at run time, and some methods cannot be prepared ahead).
/// </summary>
internal static class BodyPreparer
{
    /// <summary>Call depth followed from the body's own method.</summary>
    internal const int MaxDepth = 4;

    /// <summary>At most this many methods per body: deep library code is left to the child.</summary>
    internal const int MaxMethods = 400;

    private static readonly ConcurrentDictionary<MethodInfo, int> Prepared = new();
    private static readonly Lazy<Dictionary<short, OperandType>> Operands = new(ReadOpCodes);

    /// <summary>How many methods the last new body made the parent compile (for measurements).</summary>
    internal static int LastCount { get; private set; }

    public static void Prepare(Delegate body)
    {
        // NativeAOT compiled everything ahead: there is no JIT to run here, nor in the child.
        if (!RuntimeFeature.IsDynamicCodeCompiled)
        {
            return;
        }
        MethodInfo root = body.Method;
        if (Prepared.ContainsKey(root))
        {
            return;
        }
        Prepared[root] = LastCount = Walk(root);
    }

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Only runs with a JIT; a method body trimmed away is simply not prepared.")]
    [UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "Generic arguments of methods the IL names; missing ones are skipped.")]
    private static int Walk(MethodBase root)
    {
        var seen = new HashSet<MethodBase> { root };
        var queue = new Queue<(MethodBase Method, int Depth)>();
        queue.Enqueue((root, 0));
        int count = 0;
        while (queue.Count > 0 && count < MaxMethods)
        {
            (MethodBase method, int depth) = queue.Dequeue();
            if (!Compile(method))
            {
                continue;
            }
            count++;
            if (depth == MaxDepth)
            {
                continue;
            }
            foreach (MethodBase callee in Callees(method))
            {
                if (seen.Add(callee))
                {
                    queue.Enqueue((callee, depth + 1));
                }
            }
        }
        return count;
    }

    private static bool Compile(MethodBase method)
    {
        if (method.IsAbstract || method.ContainsGenericParameters || method.DeclaringType is null)
        {
            return false;
        }
        try
        {
            Type type = method.DeclaringType;
            Type[] typeArguments = type.IsGenericType ? type.GetGenericArguments() : [];
            Type[] methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : [];
            RuntimeTypeHandle[]? instantiation = typeArguments.Length + methodArguments.Length == 0
                ? null
                : [.. typeArguments.Concat(methodArguments).Select(t => t.TypeHandle)];
            if ((method.Attributes & MethodAttributes.PinvokeImpl) != 0)
            {
                Marshal.Prelink((MethodInfo)method); // binds the native function now: binding takes loader locks too
                return true;
            }
            RuntimeHelpers.PrepareMethod(method.MethodHandle, instantiation);
            return true;
        }
        catch (Exception exception) when (exception is ArgumentException or NotSupportedException or InvalidOperationException or BadImageFormatException or TypeLoadException or MarshalDirectiveException)
        {
            return false; // dynamic methods and some instantiations cannot be prepared ahead
        }
    }

    [RequiresUnreferencedCode("Reads method bodies.")]
    private static IEnumerable<MethodBase> Callees(MethodBase method)
    {
        byte[]? il;
        try
        {
            il = method.GetMethodBody()?.GetILAsByteArray();
        }
        catch (Exception exception) when (exception is InvalidOperationException or NotSupportedException or ArgumentException)
        {
            yield break;
        }
        if (il is null)
        {
            yield break;
        }
        Type[]? typeArguments = method.DeclaringType is { IsGenericType: true } type ? type.GetGenericArguments() : null;
        Type[]? methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
        Dictionary<short, OperandType> operands = Operands.Value;
        for (int at = 0; at < il.Length;)
        {
            short value = il[at] == 0xFE && at + 1 < il.Length ? (short)(0xFE00 | il[at + 1]) : il[at];
            at += value > 0xFF || value < 0 ? 2 : 1;
            if (!operands.TryGetValue(value, out OperandType operand))
            {
                yield break; // not IL we understand: stop rather than misread
            }
            if (operand == OperandType.InlineMethod && at + 4 <= il.Length)
            {
                MethodBase? callee = Resolve(method.Module, BitConverter.ToInt32(il, at), typeArguments, methodArguments);
                if (callee is not null)
                {
                    yield return callee;
                }
            }
            at += operand switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + (4 * BitConverter.ToInt32(il, at)),
                _ => 4,
            };
        }
    }

    [RequiresUnreferencedCode("Resolves metadata tokens.")]
    private static MethodBase? Resolve(Module module, int token, Type[]? typeArguments, Type[]? methodArguments)
    {
        try
        {
            return module.ResolveMethod(token, typeArguments, methodArguments);
        }
        catch (Exception exception) when (exception is ArgumentException or TypeLoadException or MissingMethodException or BadImageFormatException)
        {
            return null;
        }
    }

    private static Dictionary<short, OperandType> ReadOpCodes() =>
        typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(field => (OpCode)field.GetValue(null)!)
            .ToDictionary(code => code.Value, code => code.OperandType);
}
